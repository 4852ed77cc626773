package report

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/internal/fakeclock"
	"github.com/infergate/infergate/policy"
)

// host is a GPU host's agent over loopback HTTP, serving a settable report.
type host struct {
	src *countingSource
	srv *httptest.Server
}

func newHost(t *testing.T, r score.Report) *host {
	t.Helper()
	h := &host{src: &countingSource{rep: r}}
	h.srv = httptest.NewServer(Handler(h.src))
	t.Cleanup(h.srv.Close)
	return h
}

func kv(u float64, waiting float64, capacity float64) score.Report {
	return score.Report{Healthy: true, Time: time.Now(), Signals: score.HasKVCache | score.HasWaiting,
		KVCacheUsage: u, RequestsWaiting: waiting, Capacity: capacity}
}

type updates struct {
	mu  sync.Mutex
	got []Update
}

func (u *updates) add(x Update) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.got = append(u.got, x)
}

func (u *updates) n() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

func (u *updates) last() Update {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got[len(u.got)-1]
}

func newPoller(t *testing.T, wcfg score.Config, clk *fakeclock.Clock, ups *updates, ts ...Target) *Poller {
	t.Helper()
	w, err := score.NewWeighter(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPoller(w, PollerConfig{Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, OnUpdate: ups.add, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTargets(ts); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPollerWeightsFollowLoad(t *testing.T) {
	idle := newHost(t, kv(0.1, 0, 1))
	busy := newHost(t, kv(0.8, 8, 1))
	big := newHost(t, kv(0.1, 0, 2))
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{Alpha: 1, Staleness: 5 * time.Second}, clk, &ups,
		Target{Name: "pool/idle", URL: idle.srv.URL, Neutral: 100},
		Target{Name: "pool/busy", URL: busy.srv.URL, Neutral: 100},
		Target{Name: "pool/big", URL: big.srv.URL, Neutral: 100},
	)
	ctx := context.Background()
	p.Round(ctx)
	if ups.n() != 1 {
		t.Fatalf("%d updates after first round, want 1", ups.n())
	}
	w := ups.last().Weights
	// idle: 100×0.9 = 90; busy: 100×0.2×(1/(1+8/4)) ≈ 6.7 → 7; big: 180.
	if w["pool/idle"].Weight != 90 || w["pool/busy"].Weight != 7 || w["pool/big"].Weight != 180 {
		t.Fatalf("weights %v", w)
	}
	for name, st := range p.Status() {
		if st.Error != "" {
			t.Fatalf("%s: %s", name, st.Error)
		}
	}

	// Small moves: no update.
	idle.src.set(kv(0.12, 0, 1), nil)
	clk.Add(time.Second)
	p.Round(ctx)
	if ups.n() != 1 {
		t.Fatalf("a 2%% move triggered an update")
	}
	if cur := p.Current()["pool/idle"].Weight; cur != 88 {
		t.Fatalf("Current %d, want 88 without hysteresis", cur)
	}

	// The busy host drains its queue: a big move, an update.
	busy.src.set(kv(0.2, 0, 1), nil)
	clk.Add(time.Second)
	p.Round(ctx)
	if ups.n() != 2 || ups.last().Weights["pool/busy"].Weight != 80 {
		t.Fatalf("after busy host recovered: %d updates, last %v", ups.n(), ups.last().Weights)
	}
}

func TestPollerSilentHostDecaysToNeutral(t *testing.T) {
	a := newHost(t, kv(0.9, 0, 1)) // 10
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{Alpha: 0.5, Staleness: 3 * time.Second}, clk, &ups,
		Target{Name: "p/a", URL: a.srv.URL, Neutral: 100})
	ctx := context.Background()
	p.Round(ctx)
	if got := ups.last().Weights["p/a"]; got.Weight != 10 {
		t.Fatalf("first: %+v", got)
	}
	a.srv.Close() // the host goes silent
	for range 20 {
		clk.Add(time.Second)
		p.Round(ctx)
	}
	got := p.Current()["p/a"]
	if !got.Stale || got.Weight < 95 || got.Weight > 100 {
		t.Fatalf("silent host after 20 s: %+v, want stale near neutral 100", got)
	}
	if st := p.Status()["p/a"]; st.Error == "" {
		t.Fatal("poll error not recorded")
	}
	if last := ups.last().Weights["p/a"]; last.Weight < 80 {
		t.Fatalf("last update %+v: decay never published", last)
	}
}

func TestPollerUnhealthyDrains(t *testing.T) {
	a := newHost(t, kv(0.1, 0, 1))
	b := newHost(t, kv(0.1, 0, 1))
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{}, clk, &ups,
		Target{Name: "p/a", URL: a.srv.URL, Neutral: 100}, Target{Name: "p/b", URL: b.srv.URL, Neutral: 100})
	ctx := context.Background()
	p.Round(ctx)
	b.src.set(score.Report{Time: time.Now(), Healthy: false, Reason: "gpu 2: Xid 79"}, nil)
	clk.Add(time.Second)
	p.Round(ctx)
	if ups.n() != 2 {
		t.Fatalf("%d updates, want a second one for the drain", ups.n())
	}
	got := ups.last().Weights
	if !got["p/b"].Draining || got["p/b"].Weight != 0 || got["p/a"].Draining {
		t.Fatalf("weights after unhealthy report: %v", got)
	}
}

func TestPollerClockSkew(t *testing.T) {
	// The host's clock is an hour behind; its report is fresh by its own
	// account (AgeMillis), so it must count.
	r := kv(0.5, 0, 1)
	r.Time = time.Now().Add(-time.Hour)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(w, `{"time":%q,"healthy":true,"signals":["kvCache"],"kvCacheUsage":0.5,"ageMillis":20}`, r.Time.Format(time.RFC3339Nano))
	}))
	t.Cleanup(srv.Close)
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{Staleness: 5 * time.Second}, clk, &ups, Target{Name: "p/a", URL: srv.URL, Neutral: 100})
	p.Round(context.Background())
	if st := p.Status()["p/a"]; st.Error != "" {
		t.Fatalf("skewed host rejected: %s", st.Error)
	}
	if got := p.Current()["p/a"].Weight; got != 50 {
		t.Fatalf("weight %d, want 50", got)
	}
	// A host admitting its report is a minute old is stale.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprint(w, `{"healthy":true,"signals":["kvCache"],"kvCacheUsage":0.9,"ageMillis":60000}`)
	}))
	t.Cleanup(srv2.Close)
	p2 := newPoller(t, score.Config{Staleness: 5 * time.Second}, clk, &ups, Target{Name: "p/b", URL: srv2.URL, Neutral: 100})
	p2.Round(context.Background())
	if st := p2.Status()["p/b"]; !strings.Contains(st.Error, "old") {
		t.Fatalf("old report: status %+v", st)
	}
}

func TestPollerBadResponses(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Write([]byte(`{"healthy":true,"host":"`))
		w.Write([]byte(strings.Repeat("x", DefaultMaxReportBytes)))
		w.Write([]byte(`"}`))
	}))
	t.Cleanup(big.Close)
	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { w.Write([]byte("<html>")) }))
	t.Cleanup(junk.Close)
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })

	w, _ := score.NewWeighter(score.Config{})
	clk := fakeclock.New(t0)
	p, err := NewPoller(w, PollerConfig{Interval: time.Second, Timeout: 200 * time.Millisecond, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTargets([]Target{{Name: "p/big", URL: big.URL, Neutral: 100}, {Name: "p/junk", URL: junk.URL, Neutral: 100},
		{Name: "p/slow", URL: slow.URL, Neutral: 100}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Round(context.Background())
	if time.Since(start) > 10*time.Second {
		t.Fatal("slow host held the round")
	}
	st := p.Status()
	for name, want := range map[string]string{"p/big": "over", "p/junk": "invalid", "p/slow": "deadline"} {
		if !strings.Contains(st[name].Error, want) {
			t.Errorf("%s: error %q, want %q", name, st[name].Error, want)
		}
	}
	// Nothing observed: every host stays at its neutral weight.
	for name, wt := range p.Current() {
		if wt.Weight != 100 {
			t.Errorf("%s: %d, want neutral", name, wt.Weight)
		}
	}
}

func TestPollerTargets(t *testing.T) {
	w, _ := score.NewWeighter(score.Config{})
	p, _ := NewPoller(w, PollerConfig{})
	if err := p.SetTargets([]Target{{Name: "a", URL: "http://x"}, {Name: "a", URL: "http://y"}}); err == nil {
		t.Error("duplicate target accepted")
	}
	if err := p.SetTargets([]Target{{Name: "a", URL: "file:///etc/passwd"}}); err == nil {
		t.Error("non-HTTP URL accepted")
	}
	if err := p.SetTargets([]Target{{Name: "a", URL: "http://x", Neutral: 40}, {Name: "b", URL: "http://y", Neutral: 60}}); err != nil {
		t.Fatal(err)
	}
	if c := p.Current(); c["a"].Weight != 40 || c["b"].Weight != 60 {
		t.Fatalf("neutral weights %v", c)
	}
	if err := p.SetTargets([]Target{{Name: "b", URL: "http://y", Neutral: 60}}); err != nil {
		t.Fatal(err)
	}
	if c := p.Current(); len(c) != 1 {
		t.Fatalf("removed target still weighted: %v", c)
	}
	if _, err := NewPoller(w, PollerConfig{Interval: time.Millisecond}); err == nil {
		t.Error("1 ms interval accepted")
	}
}

func TestPollerSharedURLFetchedOnce(t *testing.T) {
	h := newHost(t, kv(0.3, 0, 1))
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{}, clk, &ups,
		Target{Name: "chat/gpu1", URL: h.srv.URL, Neutral: 100}, Target{Name: "embed/gpu1", URL: h.srv.URL, Neutral: 100})
	p.Round(context.Background())
	if n := h.src.reads.Load(); n != 1 {
		t.Fatalf("host read %d times for two pools", n)
	}
	w := ups.last().Weights
	if w["chat/gpu1"].Weight != 70 || w["embed/gpu1"].Weight != 70 {
		t.Fatalf("weights %v", w)
	}
}

func TestPollerRunStops(t *testing.T) {
	h := newHost(t, kv(0.3, 0, 1))
	clk := fakeclock.New(t0)
	var ups updates
	p := newPoller(t, score.Config{}, clk, &ups, Target{Name: "p/a", URL: h.srv.URL, Neutral: 100})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for h.src.reads.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h.src.reads.Load() < 3 {
		t.Fatal("Run is not polling")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestTargetsFromPolicy(t *testing.T) {
	c := &policy.Compiled{Pools: []policy.CompiledPool{
		{Name: "chat", LoadReports: true, Backends: []policy.CompiledBackend{
			{Name: "g1", Address: netip.MustParseAddr("198.18.0.1"), Weight: 100, LoadReportURL: "http://198.18.0.1:9400/load"},
			{Name: "g2", Weight: 50, LoadReportURL: "http://198.18.0.2:9400/load"},
			{Name: "g3", Weight: 100}, // no report URL
			{Name: "g4", Weight: 100, Draining: true, LoadReportURL: "http://198.18.0.4:9400/load"},
			{Name: "g5", Weight: 0, LoadReportURL: "http://198.18.0.5:9400/load"},
		}},
		{Name: "static", Backends: []policy.CompiledBackend{{Name: "s1", Weight: 100, LoadReportURL: "http://198.18.1.1/load"}}},
	}}
	got := TargetsFromPolicy(c)
	want := []Target{{Name: "chat/g1", URL: "http://198.18.0.1:9400/load", Neutral: 100}, {Name: "chat/g2", URL: "http://198.18.0.2:9400/load", Neutral: 50}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
}
