package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/bgp"
	"github.com/infergate/infergate/agent/health"
	"github.com/infergate/infergate/policy"
)

// Agent timing.
const (
	// DefaultResync re-runs the reconciler this often even when nothing
	// asked for it, so neighbours that answer late (or change MAC) and
	// interfaces that came back are picked up.
	DefaultResync = 30 * time.Second
	// unresolvedRetry is how soon a reconcile runs again when a backend's
	// neighbour did not answer, rather than waiting for the resync.
	unresolvedRetry = 2 * time.Second
	// reconcileDebounce gathers bursts of health and weight changes into
	// one reconcile.
	reconcileDebounce = 50 * time.Millisecond
	// buildTimeout bounds route and neighbour resolution in one build.
	buildTimeout = 10 * time.Second
)

// StoredPolicy is one applied version as the store keeps it.
type StoredPolicy struct {
	Name      string
	Version   string
	AppliedAt time.Time
	Document  []byte // omitted in History
	Current   bool   // set in History
}

// PolicyStore persists applied versions across restarts.
type PolicyStore interface {
	// Save appends p to the history and makes it current; it returns the
	// entry as stored (with the store's AppliedAt).
	Save(p StoredPolicy) (StoredPolicy, error)
	// Current returns the version in force; false when none.
	Current() (StoredPolicy, bool, error)
	// History lists versions, newest first.
	History() ([]StoredPolicy, error)
	// Get returns a version by its (unique prefix of) version string.
	Get(version string) (StoredPolicy, bool, error)
	// ClearCurrent records that no policy is in force.
	ClearCurrent() error
}

// Gateway is the L7 side an apply must also succeed on.
type Gateway interface {
	Apply(c *policy.Compiled) error
}

// GatewayBackendStats is what a Gateway may also implement to report its
// per-backend request counters; Backends shows them as each backend's L7.
// It is a separate interface so gateways without counters need nothing.
type GatewayBackendStats interface {
	// BackendL7 returns cumulative counters keyed by BackendID, for the
	// backends of the policy the gateway runs; nil when it runs none.
	BackendL7() map[string]api.BackendL7
}

// GatewayServing is what a Gateway may also implement to report that its
// listener stopped accepting; Status then shows it as LastError, so a
// node whose gateway no longer serves does not look healthy.
type GatewayServing interface {
	// ServeErr returns why the listener stopped; nil while it serves.
	ServeErr() error
}

// GatewayReinstater is what a Gateway may also implement to end its
// passive failure marking of a backend whose active health check has just
// passed, so a backend that recovered does not wait out the marking.
type GatewayReinstater interface {
	ReinstateBackend(addr netip.AddrPort)
}

// Attacher keeps an XDP program attached to the interfaces a policy names.
type Attacher interface {
	// Attach makes the program attached to exactly names in mode (a
	// policy.XDPMode*). undo restores the previous set.
	Attach(names []string, mode string) (undo func(), err error)
	// Status reports every interface attached or wanted.
	Status() []api.Interface
	// Relink re-attaches an interface that came back with a new index.
	Relink(name string) error
	// Forget drops the link of an interface that went away.
	Forget(name string)
}

// Options assemble an agent; Dataplane, Resolver and Store are required.
type Options struct {
	Role      string
	Version   string
	Dataplane Dataplane
	Resolver  Resolver
	Store     PolicyStore
	Gateway   Gateway  // nil: no L7 on this node
	Attacher  Attacher // nil: attach nothing (tests drive maps only)
	Logger    *slog.Logger
	// HealthChecks runs the policy's health checks (balancer role).
	HealthChecks bool
	Resync       time.Duration
	// OnApplied, when set, is told of every policy put in force (nil after
	// a delete), e.g. to retarget load-report polling. It runs with
	// applies serialised and must not call back into the agent.
	OnApplied func(c *policy.Compiled)
	// EncapSourceV4/V6, when set, are the outer source prefixes; else the
	// node's route source towards the backends is used.
	EncapSourceV4, EncapSourceV6 netip.Prefix
	// BGP announces the VIPs of a balancer whose policy has
	// spec.dataplane.bgp (announce.go); nil announces nothing.
	BGP *bgp.Speaker
	// DrainFile keeps the node's drain state across restarts ("" in
	// memory only).
	DrainFile string
}

// Agent owns the data plane of one node.
type Agent struct {
	o       Options
	log     *slog.Logger
	rec     *Reconciler
	health  *health.Checker
	started time.Time

	// editMu serialises whole edits (apply, rollback, key changes), so a
	// key added between reading and applying a policy is never lost.
	editMu sync.Mutex
	// applyMu serialises every change: applies, rollbacks, reconciles.
	applyMu sync.Mutex
	current *applied

	mu        sync.Mutex // guards overrides, loads, desired, lastErr
	overrides map[string]Override
	loads     map[string]api.Load
	desired   *Desired
	lastErr   string

	reconciles, reconcileErrors, scrapeErrors atomic.Uint64
	// loadSource, when set, gives each backend's last GPU load report.
	loadSource func() map[string]api.Load
	kickc      chan struct{}
	// retryPending is set while a quick retry for unresolved neighbours
	// is scheduled.
	retryPending atomic.Bool

	// draining: the operator drained the node; writeOK: the last map
	// update succeeded. Both decide whether the VIPs are announced.
	draining, writeOK atomic.Bool
	bgpCfg            bgp.Config // guarded by mu
	announcec         chan struct{}
}

type applied struct {
	stored   StoredPolicy
	compiled *policy.Compiled
}

// New builds an agent; Start brings the last good policy back.
func New(o Options) (*Agent, error) {
	if o.Dataplane == nil || o.Resolver == nil || o.Store == nil {
		return nil, errors.New("agent: Dataplane, Resolver and Store are required")
	}
	if o.Role != RoleBalancer && o.Role != RoleGPUHost {
		return nil, fmt.Errorf("agent: unknown role %q (balancer or gpu-host)", o.Role)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	a := &Agent{
		o: o, log: o.Logger, rec: NewReconciler(o.Dataplane), started: time.Now(),
		overrides: map[string]Override{}, loads: map[string]api.Load{},
		kickc: make(chan struct{}, 1), announcec: make(chan struct{}, 1),
	}
	a.writeOK.Store(true)
	if o.DrainFile != "" {
		if _, err := os.Stat(o.DrainFile); err == nil {
			a.draining.Store(true)
			o.Logger.Warn("the node is drained (left so by an earlier agent): its VIPs are not announced until undrained", "file", o.DrainFile)
		}
	}
	a.health = health.NewChecker(a.onHealth)
	return a, nil
}

// Adopt seeds the reconciler from maps a previous agent left pinned.
func (a *Agent) Adopt() error { return a.rec.Adopt() }

// Start applies the policy found in the store, or initial when given
// (a --policy-file) and new to the store (startup.go says when), and runs
// the reconcile loop until ctx ends.
func (a *Agent) Start(ctx context.Context, initial []byte) error {
	applyFile := false
	if initial != nil {
		var why string
		var err error
		if applyFile, why, err = startupFile(initial, a.o.Store); err != nil {
			return err
		}
		if !applyFile {
			a.log.Warn("not applying --policy-file", "reason", why)
		}
	}
	if applyFile {
		if _, err := a.Apply(ctx, initial, false); err != nil {
			return fmt.Errorf("apply policy file: %w", err)
		}
	} else {
		sp, ok, err := a.o.Store.Current()
		if err != nil {
			return fmt.Errorf("read stored policy: %w", err)
		}
		if ok {
			if _, err := a.applyDocument(ctx, sp.Document, false, &sp); err != nil {
				return fmt.Errorf("re-apply stored policy %s: %w", sp.Version, err)
			}
			a.log.Info("restored last applied policy", "name", sp.Name, "version", sp.Version)
		} else {
			if len(a.rec.BackendIDs()) > 0 {
				a.log.Warn("no stored policy, but pinned maps hold steering state from a previous agent; clearing it (apply a policy to steer again)")
			}
			if err := a.reconcileEmpty(); err != nil {
				return err
			}
		}
	}
	if a.o.Attacher != nil {
		events := make(chan LinkEvent, 16)
		if err := WatchLinks(ctx, nil, events); err != nil {
			return err
		}
		go a.watchLinks(ctx, events)
	}
	go a.loop(ctx)
	if a.o.BGP != nil {
		go a.announceLoop(ctx)
	}
	return nil
}

// watchLinks re-attaches interfaces that come back and re-resolves routes
// when links change.
func (a *Agent) watchLinks(ctx context.Context, events <-chan LinkEvent) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if !ev.Present {
				a.o.Attacher.Forget(ev.Name)
			} else if ev.Up {
				if err := a.o.Attacher.Relink(ev.Name); err != nil {
					a.log.Error("re-attaching XDP to an interface that came back failed", "interface", ev.Name, "err", err)
					a.fail(err)
				}
			}
			a.kick()
		}
	}
}

// reconcileEmpty writes the empty state so a fresh node's maps are known.
func (a *Agent) reconcileEmpty() error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	d, err := a.build(context.Background(), nil)
	if err != nil {
		return err
	}
	return a.write(d)
}

// Close stops health checks.
func (a *Agent) Close() {
	a.health.Close()
}

func (a *Agent) loop(ctx context.Context) {
	t := time.NewTicker(a.o.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kickc:
			// Gather a burst of changes into one pass.
			time.Sleep(reconcileDebounce)
		}
		if err := a.Reconcile(ctx); err != nil {
			a.log.Error("reconcile failed; the data plane keeps its previous state", "err", err)
		}
	}
}

func (a *Agent) kick() {
	select {
	case a.kickc <- struct{}{}:
	default:
	}
}

func (a *Agent) onHealth(id string, healthy bool) {
	if healthy {
		a.log.Info("backend passed its health checks; taking new flows again", "backend", id)
	} else {
		a.log.Warn("backend failed its health checks; draining (no new flows)", "backend", id)
	}
	a.mu.Lock()
	ov := a.overrides[id]
	ov.Unhealthy = !healthy
	a.overrides[id] = ov
	a.mu.Unlock()
	if healthy {
		a.reinstate(id)
	}
	a.kick()
}

// reinstate tells the gateway, if it marks backends out by their failures,
// that backend id (a BackendID of the policy in force) passed its health
// checks.
func (a *Agent) reinstate(id string) {
	r, ok := a.o.Gateway.(GatewayReinstater)
	if !ok {
		return
	}
	_, c, ok := a.Current()
	if !ok {
		return
	}
	for _, p := range c.Pools {
		for _, b := range p.Backends {
			if BackendID(p.Name, b.Name) == id {
				r.ReinstateBackend(netip.AddrPortFrom(b.Address, b.Port))
				return
			}
		}
	}
}

// SetLoad records what a backend's load report says (weight, drain) and
// schedules a reconcile when it changes the weights.
func (a *Agent) SetLoad(id string, weight uint32, drain bool, load *api.Load) {
	a.mu.Lock()
	ov := a.overrides[id]
	changed := !ov.HasWeight || ov.Weight != weight || ov.ReportDrain != drain
	ov.Weight, ov.HasWeight, ov.ReportDrain = weight, true, drain
	a.overrides[id] = ov
	if load != nil {
		a.loads[id] = *load
	}
	a.mu.Unlock()
	if changed {
		a.kick()
	}
}

// Reconcile rebuilds desired state from the policy in force and converges
// the data plane to it.
func (a *Agent) Reconcile(ctx context.Context) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	var c *policy.Compiled
	if a.current != nil {
		c = a.current.compiled
	}
	d, err := a.build(ctx, c)
	if err != nil {
		a.fail(err)
		return err
	}
	return a.write(d)
}

func (a *Agent) build(ctx context.Context, c *policy.Compiled) (*Desired, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	a.mu.Lock()
	ov := maps.Clone(a.overrides)
	a.mu.Unlock()
	return Build(ctx, c, BuildOptions{Role: a.o.Role, Resolver: a.o.Resolver, Overrides: ov,
		MaxBackends: int(a.o.Dataplane.MaxBackends()) - firstBackendID})
}

// write converges the data plane to d; applyMu is held.
func (a *Agent) write(d *Desired) (err error) {
	a.reconciles.Add(1)
	defer func() {
		if a.writeOK.Swap(err == nil) != (err == nil) {
			a.kickAnnounce()
		}
	}()
	if src, ok := a.o.Dataplane.(interface {
		SetEncapSources(v4, v6 netip.Prefix) error
	}); ok {
		v4, v6 := a.o.EncapSourceV4, a.o.EncapSourceV6
		if !v4.IsValid() && d.SourceV4.IsValid() {
			v4 = netip.PrefixFrom(d.SourceV4, 32)
		}
		if !v6.IsValid() && d.SourceV6.IsValid() {
			v6 = netip.PrefixFrom(d.SourceV6, 128)
		}
		if err := src.SetEncapSources(v4, v6); err != nil {
			a.fail(err)
			return fmt.Errorf("set IPIP source: %w", err)
		}
	}
	if ds, ok := a.o.Dataplane.(interface {
		SetDecapSources(p []netip.Prefix) error
	}); ok && d.Role == RoleGPUHost {
		a.mu.Lock()
		warned := a.desired != nil && len(a.desired.DecapSources) == 0 && len(a.desired.LocalVIPs) > 0
		a.mu.Unlock()
		if len(d.DecapSources) == 0 && len(d.LocalVIPs) > 0 && !warned {
			a.log.Warn("spec.dataplane.decapSources is empty: the decapsulator accepts no encapsulated packet for the local VIPs")
		}
		if err := ds.SetDecapSources(d.DecapSources); err != nil {
			a.fail(err)
			return fmt.Errorf("set decapsulation sources: %w", err)
		}
	}
	st, err := a.rec.Apply(d)
	if err != nil {
		a.fail(err)
		return err
	}
	if st.Writes > 0 {
		a.log.Info("data plane updated", "writes", st.Writes)
	}
	a.mu.Lock()
	var was []string
	if a.desired != nil {
		was = a.desired.Panic
	}
	if len(d.Unresolved) > 0 && a.retryPending.CompareAndSwap(false, true) {
		a.log.Warn("backends' next hops did not answer ARP/ND; they take no new flows until they do", "backends", fmt.Sprint(d.Unresolved))
		time.AfterFunc(unresolvedRetry, func() {
			a.retryPending.Store(false)
			a.kick()
		})
	}
	for _, p := range d.Panic {
		if !slices.Contains(was, p) {
			a.log.Warn("every backend of the pool is out; keeping them all in the table rather than steering nothing", "pool", p)
		}
	}
	a.desired = d
	a.lastErr = ""
	a.mu.Unlock()
	return nil
}

func (a *Agent) fail(err error) {
	a.reconcileErrors.Add(1)
	a.mu.Lock()
	a.lastErr = err.Error()
	a.mu.Unlock()
}
