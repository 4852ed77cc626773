package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/api/apitest"
	"github.com/infergate/infergate/internal/privtest"
)

// TestTopInTerminal runs the built binary's `top` in a real pseudo-terminal
// (a detached tmux session) against a fake agent whose counters grow, reads
// the screen until the backends and their computed rates show, presses q and
// checks it exits with 0 and gives the terminal back.
func TestTopInTerminal(t *testing.T) {
	privtest.Tools(t, "tmux")
	dir := t.TempDir()
	bin := filepath.Join(dir, "infergate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	a := apitest.Start(t)
	a.SetStats(fixtureStats())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Requests grow by 10 every 100ms (about 100/s), tokens by 200 (2000/s),
	// each with a 250ms time to first token; firewall drops by 5.
	go func() {
		bs := fixtureBackends()
		st := fixtureStats()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			l7 := bs[0].L7
			l7.Requests += 10
			l7.CompletionTokens += 200
			l7.TTFTCount += 10
			l7.TTFTSecondsSum += 2.5
			bs[0].Packets += 500
			st.Drops["firewall"] += 5
			a.SetBackends(bs)
			a.SetStats(st)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	tsock := filepath.Join(dir, "tmux.sock")
	exitFile := filepath.Join(dir, "exit")
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-S", tsock}, args...)...).CombinedOutput()
		return string(out), err
	}
	script := bin + " top --socket " + a.Socket + " --interval 200ms; echo $? > " + exitFile + "; sleep 30"
	if out, err := tmux("new-session", "-d", "-s", "igtop", "-x", "180", "-y", "40", script); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = tmux("kill-server") })

	var screen string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := tmux("capture-pane", "-p", "-t", "igtop")
		if err != nil {
			t.Fatalf("capture-pane: %v\n%s", err, out)
		}
		screen = out
		if reqRate(screen, "gpu-a-1") > 0 && strings.Contains(screen, "gpu-b-1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("top never showed the backends with rates:\n%s", screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("screen:\n%s", screen)
	for _, want := range []string{"infergate top", "POOL", "REQ/S", "TTFT", "gpu-a-2", "draining", "140/100", "DROP REASON", "firewall"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	if r := reqRate(screen, "gpu-a-1"); r < 20 || r > 500 {
		t.Errorf("gpu-a-1 at %.1f requests/s; the fake serves about 100:\n%s", r, screen)
	}
	if !strings.Contains(screen, "250ms") {
		t.Errorf("TTFT is not the fake's 250ms:\n%s", screen)
	}

	if out, err := tmux("send-keys", "-t", "igtop", "q"); err != nil {
		t.Fatalf("send-keys: %v\n%s", err, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(exitFile)
		if err == nil && len(b) > 0 {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Fatalf("top exited with %s", code)
			}
			break
		}
		if time.Now().After(deadline) {
			out, _ := tmux("capture-pane", "-p", "-t", "igtop")
			t.Fatalf("top did not quit on q:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Back on the main screen, the table is gone.
	out, _ := tmux("capture-pane", "-p", "-t", "igtop")
	if strings.Contains(out, "REQ/S") {
		t.Errorf("top left its screen behind:\n%s", out)
	}
}

// reqRate reads a backend's REQ/S column off the screen (0 when absent).
func reqRate(screen, backend string) float64 {
	for _, line := range strings.Split(screen, "\n") {
		f := strings.Fields(line)
		if len(f) == 14 && f[1] == backend {
			v, err := strconv.ParseFloat(f[9], 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// TestTopFrames: without a terminal, top prints frames and exits; rates
// come from successive samples.
func TestTopFrames(t *testing.T) {
	a := apitest.Start(t)
	bs := fixtureBackends()
	a.SetBackends(bs)
	a.SetStats(fixtureStats())
	r := runCLI(t, a.Socket, "", "top", "--iterations", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "gpu-a-1") || reqRate(r.stdout, "gpu-a-1") != 0 {
		t.Fatalf("one frame: %+v", r)
	}

	v := &topView{client: api.NewClient(a.Socket), interval: time.Second, out: &strings.Builder{}, outFd: -1}
	s1 := v.fetch(context.Background())
	_ = v.draw(s1, "\n", false)
	bs[0].L7.Requests += 300
	bs[0].L7.TTFTCount += 3
	bs[0].L7.TTFTSecondsSum += 0.3
	a.SetBackends(bs)
	s2 := v.fetch(context.Background())
	s2.at = s1.at.Add(2 * time.Second)
	var out strings.Builder
	v.out = &out
	if err := v.draw(s2, "\n", false); err != nil {
		t.Fatal(err)
	}
	if got := reqRate(out.String(), "gpu-a-1"); got != 150 {
		t.Fatalf("300 requests over 2s shown as %v/s:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "100ms") {
		t.Fatalf("mean TTFT of 3 x 100ms not shown:\n%s", out.String())
	}
}
