package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Live reaction to a GPU slowing mid-run (a thermally throttled or
// shared GPU): three equal GPU hosts whose mock engines keep a prefix cache
// and publish its KV events; "infergate gateway -f" in a client namespace
// in front of them; open-loop Poisson arrivals of streamed chats sharing
// eight long system prompts. At kvSlowAt one host is slowed to kvSlowFactor
// of its speed. The same run is made with static weights (the gateway's
// weighted power of two choices on its own in-flight counts) and with the
// load-aware picker (load reports and the engines' KV events).
const (
	kvRate        = 40.0 // requests per second, offered
	kvWarmup      = 4 * time.Second
	kvSlowAt      = 14 * time.Second
	kvRunFor      = 26 * time.Second
	kvSlowFactor  = 0.3
	kvTokens      = 16
	kvPrompts     = 8
	kvEventsPort  = 5557
	kvGatewayPort = 18000
	kvWindow      = time.Second
	kvStep        = 250 * time.Millisecond
	kvSlowHost    = 2
)

// kvFleet: batch 4, 20 ms to first token plus 2 ms of prefill per
// uncached 16-token block (a cold system prompt of about 25 blocks costs
// 50 ms more), 15 tokens at 200/s; a cache of 96 blocks holds three or
// four of the eight system prompts, so the fleet can hold them all only
// if each prompt keeps to its hosts: where a prompt goes decides whether
// it is cached.
var kvFleet = func() []lab.GPU {
	g := lab.GPU{TTFT: 20 * time.Millisecond, TokensPerSecond: 200, Batch: 4, Control: true,
		KVEventsPort: kvEventsPort, KVBlocks: 96, KVPrefillPerBlock: 2 * time.Millisecond}
	return []lab.GPU{g, g, g}
}()

type kvRecord struct {
	at   time.Duration // start, from the run's start
	ttft time.Duration
	err  error
}

// kvSample is the hosts' request totals (their /debug/stats) at a time.
type kvSample struct {
	at     time.Duration
	totals []int64
}

type kvSummary struct {
	beforeP50, beforeP99, afterP50, afterP99 time.Duration
	slowShareBefore, slowShareLast           float64
	moved                                    time.Duration // -1: never
	n, failed                                int
	hitRatio                                 float64 // prompt blocks found cached, all hosts
}

func TestLiveSlowdownKVEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("live slowdown comparison: about 2 minutes")
	}
	l := newLab(t, lab.Config{Prefix: "igkv", GPUs: kvFleet})
	o := standardPolicy()
	o.Name, o.LoadReports = "kvlive", true
	startAll(t, l, "kvlive", o)
	key := newKey(t)
	cl := l.Clients[0]
	hc := dialer(t, cl.NS).HTTPClient(false, 60*time.Second)

	st := kvRun(t, l, hc, startKVGateway(t, l, 0, key), key, "static weights")
	ap := kvRun(t, l, hc, startKVGateway(t, l, 1, key), key, "load reports, approximate prefix index")
	aw := kvRun(t, l, hc, startKVGateway(t, l, 2, key), key, "load reports + KV events")

	for _, r := range []struct {
		name string
		s    kvSummary
	}{{"static weights", st}, {"load reports, approximate prefix index", ap}, {"load reports + KV events", aw}} {
		moved := "never"
		if r.s.moved >= 0 {
			moved = r.s.moved.Round(10 * time.Millisecond).String()
		}
		t.Logf("%s: %d requests (%d failed); p50/p99 TTFT before the slowdown %s/%s, after %s/%s; slowed host's share %.0f%% before, %.0f%% in the last 2 s; load moved after %s; prefix-cache block hits %.0f%%",
			r.name, r.s.n, r.s.failed, r.s.beforeP50.Round(time.Millisecond), r.s.beforeP99.Round(time.Millisecond),
			r.s.afterP50.Round(time.Millisecond), r.s.afterP99.Round(time.Millisecond),
			100*r.s.slowShareBefore, 100*r.s.slowShareLast, moved, 100*r.s.hitRatio)
	}
	if aw.failed > 0 || ap.failed > 0 || st.failed > 0 {
		t.Errorf("failed requests: static %d, approximate %d, KV events %d", st.failed, ap.failed, aw.failed)
	}
	// The load-aware picker must move load off the slowed host within the
	// run; by how much and how fast, against static weights, is the
	// measurement above.
	if aw.moved < 0 {
		t.Errorf("the load-aware picker never halved the slowed host's share (%.0f%% before, %.0f%% at the end)",
			100*aw.slowShareBefore, 100*aw.slowShareLast)
	}
}

// startKVGateway writes the gateway's policy (the lab's document, its
// gateway serving the model from pool gpu-v4) at level 0 (static
// weights), 1 (load reports, so the load picker with its approximate
// prefix index) or 2 (load reports and the engines' KV events), and starts
// "infergate gateway -f" in the first client's namespace on its own port.
// It returns the chat URL.
func startKVGateway(t *testing.T, l *lab.Lab, level int, key string) string {
	t.Helper()
	name := []string{"static", "approx", "kvevents"}[level]
	o := lab.PolicyOptions{Name: "gw-" + name, LoadReports: level > 0, Gateway: lab.AIGateway(lab.AITenant{Name: "t", Key: key})}
	d := l.Policy(o)
	for i := range d.Spec.Pools {
		if level == 2 && d.Spec.Pools[i].Name == "gpu-v4" {
			d.Spec.Pools[i].KVEvents = &policy.PoolKVEvents{Port: kvEventsPort, BlockSize: 16}
		}
	}
	doc, err := policy.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := l.WritePolicy("gw-"+name, doc)
	if err != nil {
		t.Fatal(err)
	}
	port := kvGatewayPort + level
	addr := netip.AddrPortFrom(l.Clients[0].V4, uint16(port))
	logPath := filepath.Join(l.Cfg.Dir, "gateway-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+l.Clients[0].NS, "--", l.Cfg.Infergate, "gateway", "-f", pf, "--listen", addr.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("gateway %s log:\n%s", name, tailBytes(b, 4000))
		}
	})
	d2 := dialer(t, l.Clients[0].NS)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := d2.DialContext(context.Background(), "tcp", addr.String())
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("gateway %s exited:\n%s", name, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s not listening on %s: %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("http://%s/v1/chat/completions", addr)
}

func kvSystemPrompt(i int) string {
	return fmt.Sprintf("You are assistant number %d. ", i) + strings.Repeat(fmt.Sprintf("Rule %d: answer briefly, cite sources, and keep to topic %d. ", i, i*13), 24)
}

// kvRun offers kvRate chats a second for kvRunFor, slows one host at
// kvSlowAt, and summarises. Which host served what is read from the
// hosts' own request counters, sampled every kvStep (the gateway does not
// pass the hosts' headers on).
func kvRun(t *testing.T, l *lab.Lab, hc *http.Client, url, key, label string) kvSummary {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	var (
		mu      sync.Mutex
		recs    []kvRecord
		samples []kvSample
		wg      sync.WaitGroup
	)
	// Every arm starts with cold caches (their AllBlocksCleared reaches
	// the gateway like any event).
	for i, g := range l.GPUs {
		u := fmt.Sprintf("http://%s/control/kv/reset", netip.AddrPortFrom(g.V4, lab.ServicePort))
		resp, err := hc.Post(u, "application/json", nil)
		if err != nil {
			t.Fatalf("reset host %d's cache: %v", i, err)
		}
		resp.Body.Close()
	}
	hits0, miss0 := kvCounters(t, hc, l)
	start := time.Now()
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(kvStep)
		defer tick.Stop()
		for {
			totals := hostTotals(hc, l)
			if totals != nil {
				samples = append(samples, kvSample{at: time.Since(start), totals: totals})
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	next := start
	slowed := false
	for n := 0; time.Since(start) < kvRunFor; n++ {
		next = next.Add(time.Duration(rng.ExpFloat64() / kvRate * float64(time.Second)))
		time.Sleep(time.Until(next))
		if !slowed && time.Since(start) >= kvSlowAt {
			setSpeed(t, hc, l, kvSlowHost, kvSlowFactor)
			slowed = true
		}
		at := time.Since(start)
		sys := kvSystemPrompt(rng.IntN(kvPrompts))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ttft, err := kvChat(hc, url, key, sys, fmt.Sprintf("Question %d: what now?", n))
			mu.Lock()
			recs = append(recs, kvRecord{at: at, ttft: ttft, err: err})
			mu.Unlock()
		}()
	}
	close(stopSampling)
	<-sampled
	wg.Wait()
	setSpeed(t, hc, l, kvSlowHost, 1)
	hits1, miss1 := kvCounters(t, hc, l)

	var s kvSummary
	if d := (hits1 - hits0) + (miss1 - miss0); d > 0 {
		s.hitRatio = float64(hits1-hits0) / float64(d)
	}
	var before, after []time.Duration
	for _, r := range recs {
		if r.err != nil {
			s.failed++
			if s.failed == 1 {
				t.Logf("%s: first failure: %v", label, r.err)
			}
			continue
		}
		s.n++
		switch {
		case r.at >= kvWarmup && r.at < kvSlowAt:
			before = append(before, r.ttft)
		case r.at >= kvSlowAt:
			after = append(after, r.ttft)
		}
	}
	s.beforeP50, s.beforeP99 = percentiles(before)
	s.afterP50, s.afterP99 = percentiles(after)
	// share is the slowed host's share of the requests the hosts took
	// between the samples nearest from and to.
	share := func(from, to time.Duration) (float64, int64) {
		a, b := -1, -1
		for i, sm := range samples {
			if a < 0 && sm.at >= from {
				a = i
			}
			if sm.at <= to {
				b = i
			}
		}
		if a < 0 || b <= a {
			return 0, 0
		}
		var all int64
		for h := range samples[b].totals {
			all += samples[b].totals[h] - samples[a].totals[h]
		}
		if all == 0 {
			return 0, 0
		}
		return float64(samples[b].totals[kvSlowHost]-samples[a].totals[kvSlowHost]) / float64(all), all
	}
	s.slowShareBefore, _ = share(kvWarmup, kvSlowAt)
	s.slowShareLast, _ = share(kvRunFor-2*kvWindow, kvRunFor)
	s.moved = -1
	for from := kvSlowAt; from+kvWindow <= kvRunFor; from += kvStep {
		if sh, n := share(from, from+kvWindow); n >= 10 && sh <= s.slowShareBefore/2 {
			s.moved = from + kvWindow - kvSlowAt
			break
		}
	}
	return s
}

// hostTotals reads every host's request total; nil when one cannot be read.
func hostTotals(hc *http.Client, l *lab.Lab) []int64 {
	out := make([]int64, len(l.GPUs))
	for i, g := range l.GPUs {
		var st struct {
			Total int64 `json:"total"`
		}
		if err := getJSON(hc, fmt.Sprintf("http://%s/debug/stats", netip.AddrPortFrom(g.V4, lab.ServicePort)), &st); err != nil {
			return nil
		}
		out[i] = st.Total
	}
	return out
}

// kvCounters sums the hosts' prefix-cache block hits and misses.
func kvCounters(t *testing.T, hc *http.Client, l *lab.Lab) (hits, misses int64) {
	t.Helper()
	for _, g := range l.GPUs {
		var kv struct{ Hits, Misses int64 }
		if err := getJSON(hc, fmt.Sprintf("http://%s/debug/kv", netip.AddrPortFrom(g.V4, lab.ServicePort)), &kv); err != nil {
			t.Fatalf("%s /debug/kv: %v", g.Name, err)
		}
		hits, misses = hits+kv.Hits, misses+kv.Misses
	}
	return hits, misses
}

func getJSON(hc *http.Client, url string, v any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// setSpeed sets GPU host i's mock engine speed through its control
// endpoint, from the client's namespace.
func setSpeed(t *testing.T, hc *http.Client, l *lab.Lab, i int, factor float64) {
	t.Helper()
	u := fmt.Sprintf("http://%s/control/speed", netip.AddrPortFrom(l.GPUs[i].V4, lab.ServicePort))
	resp, err := hc.Post(u, "application/json", strings.NewReader(fmt.Sprintf(`{"factor": %g}`, factor)))
	if err != nil {
		t.Fatalf("set speed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("set speed: status %d", resp.StatusCode)
	}
}

// kvChat streams one chat (system prompt, then the question) and returns
// the time to the first event.
func kvChat(hc *http.Client, url, key, system, question string) (time.Duration, error) {
	body := fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":%d,"messages":[{"role":"system","content":%q},{"role":"user","content":%q}]}`,
		lab.AIModel, kvTokens, system, question)
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var ttft time.Duration
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		if ttft == 0 {
			ttft = time.Since(start)
		}
		if line == "data: [DONE]" {
			return ttft, nil
		}
	}
	return ttft, fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
}
