package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/kvindex"
	"github.com/infergate/infergate/l7/pick"
	"github.com/infergate/infergate/policy"
)

// LoadsConfig configures NewLoads. Zero fields take the poller's defaults.
type LoadsConfig struct {
	// Interval between load report rounds.
	Interval time.Duration
	// Client polls the reports.
	Client *http.Client
	// OnUpdate receives weights past the rebuild threshold (the agent's
	// Maglev tables).
	OnUpdate func(report.Update)
	Log      *slog.Logger
	// Token is sent as the bearer token of every poll (the GPU hosts'
	// --load-report-token-file); empty sends none.
	Token string
}

// Loads is the GPU load source of a process: one weighter fed by one
// report poller, read by the L7 picker (every request) and, through
// OnUpdate, by the agent's Maglev tables.
type Loads struct {
	weighter *score.Weighter
	poller   *report.Poller
	picker   *pick.Picker
	// kv follows the engines' KV-cache events of pools with kvEvents,
	// the picker's precise prefix index.
	kv *kvindex.Watcher
	// kvPolicy is the policy kv follows, restored when a later
	// SetTargets fails after moving it.
	kvPolicy *policy.Compiled
}

// NewLoads builds the weighter, its poller and the picker reading it.
func NewLoads(cfg LoadsConfig) (*Loads, error) {
	w, err := score.NewWeighter(score.Config{})
	if err != nil {
		return nil, fmt.Errorf("load reports: %w", err)
	}
	pk, err := pick.New(pick.Config{Weights: w.Current})
	if err != nil {
		return nil, fmt.Errorf("load reports: %w", err)
	}
	p, err := report.NewPoller(w, report.PollerConfig{Interval: cfg.Interval, Client: cfg.Client, OnUpdate: cfg.OnUpdate, Log: cfg.Log, Token: cfg.Token})
	if err != nil {
		return nil, fmt.Errorf("load reports: %w", err)
	}
	idx, err := kvindex.New(kvindex.Config{})
	if err != nil {
		return nil, fmt.Errorf("kv events: %w", err)
	}
	kv := kvindex.NewWatcher(idx, cfg.Log)
	pk.SetPrecise(kv)
	return &Loads{weighter: w, poller: p, picker: pk, kv: kv}, nil
}

// SetTargets aims the poller at c's pools with loadReports on and the
// picker at the same pools. On error nothing changed.
func (l *Loads) SetTargets(c *policy.Compiled) error {
	var ts []report.Target
	if c != nil {
		ts = report.TargetsFromPolicy(c)
	}
	// The weighter's weights are load factors around the base weight;
	// the static weight is applied once, by score.Effective where the
	// picker and the Maglev tables combine the two. So a silent host
	// decays to the neutral load, not to its static weight (which would
	// count it twice).
	for i := range ts {
		ts[i].Neutral = score.DefaultBaseWeight
	}
	// The KV-event pools first: only they can fail without a change
	// (an encoding that does not load), and the poller's targets are
	// then still the old ones.
	if err := l.kv.SetPools(c); err != nil {
		return fmt.Errorf("kv events: %w", err)
	}
	if err := l.poller.SetTargets(ts); err != nil {
		_ = l.kv.SetPools(l.kvPolicy) // it loaded before, so it loads again
		return fmt.Errorf("load report targets: %w", err)
	}
	l.kvPolicy = c
	if c != nil {
		l.picker.SetPools(c)
	} else {
		l.picker.SetPools(&policy.Compiled{})
	}
	return nil
}

// Run polls the load reports and follows the KV-event streams until ctx
// ends.
func (l *Loads) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); _ = l.kv.Run(ctx) }()
	err := l.poller.Run(ctx)
	<-done
	return err
}

// KVIndex is the precise prefix index fed by the engines' KV-cache events.
func (l *Loads) KVIndex() *kvindex.Index { return l.kv.Index() }

// Current returns the unthresholded weights, keyed "pool/backend".
func (l *Loads) Current() score.Weights { return l.poller.Current() }

// Picker is the L7 picker reading these loads.
func (l *Loads) Picker() *pick.Picker { return l.picker }

// usesLoadReports reports whether any pool of c is steered by load: only
// then does the gateway get the picker, so a policy without such pools
// never assembles prompts for prefix affinity.
func usesLoadReports(c *policy.Compiled) bool {
	for _, p := range c.Pools {
		if p.LoadReports || p.KVEvents != nil {
			return true
		}
	}
	return false
}
