// Package health probes backends over TCP or HTTP and reports when one
// turns healthy or unhealthy, with rise/fall hysteresis.
package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/infergate/infergate/policy"
)

// Health check bounds.
const (
	// healthBodyLimit bounds what an HTTP check reads of a response.
	healthBodyLimit = 4 << 10
	// minHealthInterval keeps a typo from turning checks into a flood.
	minHealthInterval = 50 * time.Millisecond
)

// Target is one backend to probe.
type Target struct {
	ID       string // from Targets' id function
	Addr     netip.AddrPort
	HTTP     bool
	Path     string
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
}

// State is what the checker knows of one target.
type State struct {
	Healthy   bool
	LastError string
	Checked   time.Time
}

// Checker probes backends and reports changes. A backend starts
// healthy, so an agent restarting under traffic does not drain a pool while
// it waits for its first results; it turns unhealthy after Fall failures in
// a row and healthy again after Rise successes in a row.
type Checker struct {
	onChange func(id string, healthy bool)

	mu      sync.Mutex
	probes  map[string]*probe
	closed  bool
	wg      sync.WaitGroup
	dialCtx func(ctx context.Context, network, addr string) (net.Conn, error)
}

type probe struct {
	target Target
	cancel context.CancelFunc
	state  State
}

// NewChecker returns a Checker that calls onChange (from a checker
// goroutine) whenever a target's health flips.
func NewChecker(onChange func(id string, healthy bool)) *Checker {
	d := &net.Dialer{}
	return &Checker{onChange: onChange, probes: map[string]*probe{}, dialCtx: d.DialContext}
}

// Targets lists the probes a compiled policy asks for; id names a pool's
// backend (the agent passes its BackendID).
func Targets(c *policy.Compiled, id func(pool, backend string) string) []Target {
	if c == nil {
		return nil
	}
	var out []Target
	for _, p := range c.Pools {
		hc := p.HealthCheck
		if hc == nil {
			continue
		}
		for _, b := range p.Backends {
			port := hc.Port
			if port == 0 {
				port = b.Port
			}
			out = append(out, Target{
				ID: id(p.Name, b.Name), Addr: netip.AddrPortFrom(b.Address, port),
				HTTP: hc.HTTP, Path: hc.Path, Interval: hc.Interval, Timeout: hc.Timeout,
				Rise: max(hc.Rise, 1), Fall: max(hc.Fall, 1),
			})
		}
	}
	return out
}

// Set replaces the targets. A target whose definition is unchanged keeps
// its state and its schedule; others restart healthy.
func (h *Checker) Set(targets []Target) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	want := map[string]Target{}
	for _, t := range targets {
		want[t.ID] = t
	}
	for id, p := range h.probes {
		if t, ok := want[id]; !ok || t != p.target {
			p.cancel()
			delete(h.probes, id)
		}
	}
	for id, t := range want {
		if _, ok := h.probes[id]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		p := &probe{target: t, cancel: cancel, state: State{Healthy: true}}
		h.probes[id] = p
		h.wg.Add(1)
		go h.run(ctx, p)
	}
}

// States returns every target's state by ID.
func (h *Checker) States() map[string]State {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]State, len(h.probes))
	for id, p := range h.probes {
		out[id] = p.state
	}
	return out
}

// Close stops every probe and waits for them.
func (h *Checker) Close() {
	h.mu.Lock()
	h.closed = true
	for id, p := range h.probes {
		p.cancel()
		delete(h.probes, id)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *Checker) run(ctx context.Context, p *probe) {
	defer h.wg.Done()
	t := p.target
	interval := max(t.Interval, minHealthInterval)
	timeout := t.Timeout
	if timeout <= 0 || timeout > interval {
		timeout = interval
	}
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       h.dialCtx,
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var okRun, failRun int
	for {
		err := h.check(ctx, client, t, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
		} else {
			okRun, failRun = 0, failRun+1
		}
		h.mu.Lock()
		st := &p.state
		st.Checked = time.Now()
		st.LastError = ""
		if err != nil {
			st.LastError = err.Error()
		}
		flipped := false
		if st.Healthy && failRun >= t.Fall {
			st.Healthy, flipped = false, true
		} else if !st.Healthy && okRun >= t.Rise {
			st.Healthy, flipped = true, true
		}
		healthy := st.Healthy
		h.mu.Unlock()
		if flipped && h.onChange != nil {
			h.onChange(t.ID, healthy)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (h *Checker) check(ctx context.Context, client *http.Client, t Target, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !t.HTTP {
		c, err := h.dialCtx(ctx, "tcp", t.Addr.String())
		if err != nil {
			return err
		}
		return c.Close()
	}
	path := t.Path
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr.String()+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "infergate-health")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, healthBodyLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return nil
}
