package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/policy"
)

// Poller defaults and bounds.
const (
	// DefaultPollInterval: one report per backend per second follows a
	// queue building up within a few seconds, at negligible cost.
	DefaultPollInterval = time.Second
	// DefaultPollTimeout must stay below the interval so one slow host
	// cannot delay the round.
	DefaultPollTimeout = 500 * time.Millisecond
	// DefaultMaxReportBytes bounds one report body; a report with detail
	// for 8 GPUs is a few KiB.
	DefaultMaxReportBytes = 256 << 10
	// maxParallelPolls bounds concurrent requests in one round.
	maxParallelPolls = 32
	// maxTargets bounds the number of backends polled.
	maxTargets = 4096
	// minPollInterval keeps a misconfiguration from hammering hosts.
	minPollInterval = 50 * time.Millisecond
)

// Target is one backend to poll.
type Target struct {
	// Name identifies the backend in weight updates: "pool/backend", the
	// form of agent.BackendID.
	Name string
	// URL of the host's load report.
	URL string
	// Neutral is the weight the backend decays to while its reports are
	// missing: its static weight from policy.
	Neutral uint32
}

// TargetID is the name a Target gets for a backend of a pool; it matches
// agent.BackendID.
func TargetID(pool, backend string) string { return pool + "/" + backend }

// TargetsFromPolicy lists the backends of pools with LoadReports on that
// have a LoadReportURL, skipping backends drained or weighted 0 by policy
// (policy outranks load reports).
func TargetsFromPolicy(c *policy.Compiled) []Target {
	var out []Target
	for _, p := range c.Pools {
		if !p.LoadReports {
			continue
		}
		for _, b := range p.Backends {
			if b.LoadReportURL == "" || b.Draining || b.Weight == 0 {
				continue
			}
			out = append(out, Target{Name: TargetID(p.Name, b.Name), URL: b.LoadReportURL, Neutral: b.Weight})
		}
	}
	return out
}

// Update is a new set of weights to build Maglev tables from.
type Update struct {
	Weights score.Weights
	Time    time.Time
}

// PollerConfig tunes a Poller. Zero fields take defaults.
type PollerConfig struct {
	Interval time.Duration
	Timeout  time.Duration
	MaxBytes int64
	Client   *http.Client
	Log      *slog.Logger
	// Token is sent as "Authorization: Bearer <token>" with every poll
	// (the GPU hosts' --load-report-token-file); empty sends none.
	Token string
	// OnUpdate is called, from the polling goroutine, whenever the
	// Weighter decides the weights moved enough to rebuild (and once after
	// the first round). It must not block for long.
	OnUpdate func(Update)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Poller polls every target's load report, feeds a score.Weighter, and
// hands out weight updates. A host that does not answer is simply not
// observed: after the Weighter's staleness it decays to its neutral weight.
type Poller struct {
	w   *score.Weighter
	cfg PollerConfig

	mu      sync.Mutex
	targets []Target
	status  map[string]PollStatus
}

// PollStatus is the outcome of the last poll of one target.
type PollStatus struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"`
}

// NewPoller returns a Poller feeding w.
func NewPoller(w *score.Weighter, cfg PollerConfig) (*Poller, error) {
	if w == nil {
		return nil, errors.New("report: poller needs a weighter")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultPollInterval
	}
	if cfg.Interval < minPollInterval {
		return nil, fmt.Errorf("report: poll interval %v below %v", cfg.Interval, minPollInterval)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(DefaultPollTimeout, cfg.Interval)
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxReportBytes
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Poller{w: w, cfg: cfg, status: map[string]PollStatus{}}, nil
}

// SetTargets replaces the polled set: new backends start at their neutral
// weight, removed ones are forgotten by the Weighter.
func (p *Poller) SetTargets(ts []Target) error {
	if len(ts) > maxTargets {
		return fmt.Errorf("report: %d targets, limit %d", len(ts), maxTargets)
	}
	seen := map[string]bool{}
	for _, t := range ts {
		if seen[t.Name] {
			return fmt.Errorf("report: target %q listed twice", t.Name)
		}
		seen[t.Name] = true
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("report: target %q: bad URL %q", t.Name, t.URL)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, old := range p.targets {
		if !seen[old.Name] {
			p.w.Remove(old.Name)
			delete(p.status, old.Name)
		}
	}
	for _, t := range ts {
		if err := p.w.SetNeutral(t.Name, t.Neutral); err != nil {
			return err
		}
	}
	p.targets = slices.Clone(ts)
	return nil
}

// Status returns the last poll outcome per target.
func (p *Poller) Status() map[string]PollStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]PollStatus, len(p.status))
	for k, v := range p.status {
		out[k] = v
	}
	return out
}

// Current returns the weights now, without hysteresis (for the L7 router).
func (p *Poller) Current() score.Weights { return p.w.Current() }

// Run polls every Interval until ctx ends, and returns ctx's error.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.Round(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Round polls every target once, in parallel, then ages silent hosts and
// calls OnUpdate if the weights moved enough. Run calls it; tests may too.
func (p *Poller) Round(ctx context.Context) {
	p.mu.Lock()
	targets := slices.Clone(p.targets)
	p.mu.Unlock()

	// Targets sharing a URL (one host in several pools) are fetched once.
	byURL := map[string][]Target{}
	var urls []string
	for _, t := range targets {
		if _, ok := byURL[t.URL]; !ok {
			urls = append(urls, t.URL)
		}
		byURL[t.URL] = append(byURL[t.URL], t)
	}
	type result struct {
		url string
		rep score.Report
		at  time.Time
		err error
	}
	results := make([]result, len(urls))
	sem := make(chan struct{}, maxParallelPolls)
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rep, at, err := p.fetch(ctx, u)
			results[i] = result{url: u, rep: rep, at: at, err: err}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}

	now := p.cfg.Now()
	status := map[string]PollStatus{}
	for _, r := range results {
		for _, t := range byURL[r.url] {
			st := PollStatus{Time: now}
			if r.err == nil {
				r.err = p.w.Observe(t.Name, r.rep, r.at)
			}
			if r.err != nil {
				st.Error = r.err.Error()
				p.cfg.Log.Debug("load report", "backend", t.Name, "err", r.err)
			}
			status[t.Name] = st
		}
	}
	p.mu.Lock()
	for k, v := range status {
		p.status[k] = v
	}
	p.mu.Unlock()

	p.w.Tick(now)
	if ws, rebuild := p.w.Next(); rebuild && p.cfg.OnUpdate != nil {
		p.cfg.OnUpdate(Update{Weights: ws, Time: now})
	}
}

// fetch gets and decodes one report. The report's Time is rebased onto the
// poller's clock using the host's own AgeMillis, so staleness does not
// depend on the two clocks agreeing.
func (p *Poller) fetch(ctx context.Context, u string) (score.Report, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return score.Report{}, time.Time{}, fmt.Errorf("load report %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return score.Report{}, time.Time{}, fmt.Errorf("load report %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		return score.Report{}, time.Time{}, fmt.Errorf("load report %s: status %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBytes+1))
	if err != nil {
		return score.Report{}, time.Time{}, fmt.Errorf("load report %s: %w", u, err)
	}
	if int64(len(body)) > p.cfg.MaxBytes {
		return score.Report{}, time.Time{}, fmt.Errorf("load report %s: body over %d bytes", u, p.cfg.MaxBytes)
	}
	var doc struct {
		score.Report
		AgeMillis *int64 `json:"ageMillis"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return score.Report{}, time.Time{}, fmt.Errorf("load report %s: %w", u, err)
	}
	at := p.cfg.Now()
	rep := doc.Report
	if doc.AgeMillis != nil && *doc.AgeMillis >= 0 {
		rep.Time = at.Add(-time.Duration(*doc.AgeMillis) * time.Millisecond)
	} else if rep.Time.IsZero() {
		rep.Time = at
	}
	return rep, at, nil
}
