// Package e2e proves infergate end to end: real agents and mock inference
// servers in network namespaces (see package lab), real TCP from client
// namespaces through the balancer's XDP program to GPU hosts that answer
// directly (DSR). Run as root; see internal/privtest.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/e2e/lab"
)

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ig-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	closeShared()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds infergate and iglab once for the whole package.
func binaries(t *testing.T) (infergate, iglab string) {
	t.Helper()
	// INFERGATE_E2E_BIN names a directory holding prebuilt infergate and
	// iglab binaries (to test a release build, or to iterate quickly).
	if d := os.Getenv("INFERGATE_E2E_BIN"); d != "" {
		return filepath.Join(d, "infergate"), filepath.Join(d, "iglab")
	}
	buildOnce.Do(func() {
		for _, b := range []struct{ out, pkg string }{
			{"infergate", "github.com/infergate/infergate/cmd/infergate"},
			{"iglab", "github.com/infergate/infergate/test/e2e/cmd/iglab"},
		} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %w: %s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "infergate"), filepath.Join(binDir, "iglab")
}

// newLab builds a fresh lab for one test; it is torn down with the test.
func newLab(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip", "nsenter", "sysctl", "ethtool", "taskset", "chrt")
	cfg.Infergate, cfg.Iglab = binaries(t)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "ige"
	}
	l, err := lab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l)
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

var (
	sharedMu  sync.Mutex
	shared    *lab.Lab
	sharedDir string
)

// sharedLab is one running lab (three equal GPU hosts, health checks on,
// the standard policy) that tests which leave it as they found it share.
func sharedLab(t *testing.T) *lab.Lab {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip", "nsenter", "sysctl", "ethtool", "taskset", "chrt")
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		return shared
	}
	inf, iglab := binaries(t)
	dir, err := os.MkdirTemp("", "ig-e2e-shared-")
	if err != nil {
		t.Fatal(err)
	}
	gpus := make([]lab.GPU, 3)
	for i := range gpus {
		// Paced generation, so a long completion is a long-lived stream.
		gpus[i] = lab.GPU{TokensPerSecond: sharedTokensPerSecond}
	}
	l, err := lab.New(lab.Config{Prefix: "igs", Infergate: inf, Iglab: iglab, Dir: dir, GPUs: gpus})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := l.PolicyYAML(standardPolicy())
	if err != nil {
		_ = l.Close()
		t.Fatal(err)
	}
	pf, err := l.WritePolicy("standard", doc)
	if err == nil {
		err = l.StartAll(pf)
	}
	if err != nil {
		dumpLogs(t, l)
		_ = l.Close()
		t.Fatal(err)
	}
	shared, sharedDir = l, dir
	return l
}

// Shared lab settings.
const (
	sharedTokensPerSecond = 100
	// attackerPPS and attackerConns limit every client outside the trusted
	// class, the attacker included.
	attackerPPS   = 2000
	attackerConns = 50
)

func standardPolicy() lab.PolicyOptions {
	return lab.PolicyOptions{Name: "standard", HealthCheck: true, Deny: true, DefaultPPS: attackerPPS, DefaultConns: attackerConns}
}

// startAll writes o as the policy file name and starts the lab's mock
// servers and agents with it.
func startAll(t *testing.T, l *lab.Lab, name string, o lab.PolicyOptions) {
	t.Helper()
	doc, err := l.PolicyYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := l.WritePolicy(name, doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartAll(pf); err != nil {
		t.Fatal(err)
	}
}

// apply applies a policy document to the balancer's agent.
func apply(t *testing.T, l *lab.Lab, o lab.PolicyOptions) {
	t.Helper()
	doc, err := l.PolicyYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Client(l.Balancer.Name).ApplyPolicy(ctxT(t, 30*time.Second), doc, false); err != nil {
		t.Fatalf("apply %s: %v", o.Name, err)
	}
}

// restoreStandard puts the shared lab's standard policy back when t ends.
func restoreStandard(t *testing.T, l *lab.Lab) {
	t.Cleanup(func() {
		doc, err := l.PolicyYAML(standardPolicy())
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = l.Client(l.Balancer.Name).ApplyPolicy(ctx, doc, false)
		}
		if err != nil {
			t.Errorf("restore the standard policy: %v", err)
		}
	})
}

// dialer opens a namespace dialer closed with t.
func dialer(t *testing.T, ns string) *lab.Dialer {
	t.Helper()
	d, err := lab.NewDialer(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// stats reads the balancer's counters.
func stats(t *testing.T, l *lab.Lab) *api.Stats {
	t.Helper()
	st, err := l.Client(l.Balancer.Name).Stats(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func closeShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "shared lab close:", err)
		}
		_ = os.RemoveAll(sharedDir)
		shared = nil
	}
}

// dumpLogs prints the tail of every agent log of a failed test.
func dumpLogs(t *testing.T, l *lab.Lab) {
	t.Helper()
	nodes := []string{l.Balancer.Name}
	for _, g := range l.GPUs {
		nodes = append(nodes, g.Name)
	}
	for _, n := range nodes {
		b, err := os.ReadFile(l.AgentLog(n))
		if err != nil {
			continue
		}
		const keep = 3000
		if len(b) > keep {
			b = b[len(b)-keep:]
		}
		t.Logf("--- agent log %s ---\n%s", n, b)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
