package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/agent/api"
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

// Attacher keeps an XDP program attached to the interfaces a policy names.
type Attacher interface {
	// Attach makes the program attached to exactly names in mode (a
	// policy.XDPMode*). undo restores the previous set.
	Attach(names []string, mode string) (undo func(), err error)
	// Status reports every interface attached or wanted.
	Status() []InterfaceStatus
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
	loads     map[string]LoadStatus
	desired   *Desired
	lastErr   string

	reconciles, reconcileErrors, scrapeErrors atomic.Uint64
	// loadSource, when set, gives each backend's last GPU load report.
	loadSource func() map[string]LoadStatus
	kickc      chan struct{}
	// retryPending is set while a quick retry for unresolved neighbours
	// is scheduled.
	retryPending atomic.Bool
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
		overrides: map[string]Override{}, loads: map[string]LoadStatus{},
		kickc: make(chan struct{}, 1),
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
	a.kick()
}

// SetLoad records what a backend's load report says (weight, drain) and
// schedules a reconcile when it changes the weights.
func (a *Agent) SetLoad(id string, weight uint32, drain bool, load *LoadStatus) {
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
func (a *Agent) write(d *Desired) error {
	a.reconciles.Add(1)
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

// ErrNoPolicy is returned when an operation needs a policy and none is
// applied.
var ErrNoPolicy = errors.New("no policy is applied")

// Apply decodes, validates, compiles, checks against this node and applies
// a policy document to kernel and L7, then stores it. Any failure leaves
// the version in force untouched.
func (a *Agent) Apply(ctx context.Context, doc []byte, dryRun bool) (ApplyResult, error) {
	a.editMu.Lock()
	defer a.editMu.Unlock()
	return a.applyDocument(ctx, doc, dryRun, nil)
}

// applyDocument applies doc; restored is the stored version being brought
// back at start, which is not stored again.
func (a *Agent) applyDocument(ctx context.Context, doc []byte, dryRun bool, restored *StoredPolicy) (ApplyResult, error) {
	pd, err := policy.Decode(bytes.NewReader(doc))
	if err != nil {
		return ApplyResult{}, err
	}
	c, err := policy.Compile(pd)
	if err != nil {
		return ApplyResult{}, err
	}
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	res := ApplyResult{Name: c.Name, Version: c.Version, DryRun: dryRun}
	res.Changed = a.current == nil || a.current.compiled.Version != c.Version
	d, err := a.build(ctx, c)
	if err != nil {
		return ApplyResult{}, annotateLines(err, doc)
	}
	if dryRun {
		return res, nil
	}
	if err := a.commit(c, d, doc, restored, res.Changed); err != nil {
		return ApplyResult{}, err
	}
	if restored == nil {
		a.log.Info("policy applied", "name", c.Name, "version", c.Version, "changed", res.Changed)
	}
	if a.o.Role == RoleBalancer {
		for _, b := range deniedBackends(c) {
			a.log.Warn("the firewall denies by default and no port-less allow rule covers this backend: its replies to health checks and load-report polls will be dropped in XDP", "backend", b)
		}
	}
	return res, nil
}

// deniedBackends lists backends whose traffic back to this node (replies to
// health checks and load-report polls, which arrive on the XDP interface)
// a default-deny firewall would drop.
func deniedBackends(c *policy.Compiled) []string {
	if !c.Dataplane.DefaultDeny {
		return nil
	}
	var out []string
	for _, p := range c.Pools {
		for _, b := range p.Backends {
			if !allowedByRules(c.Dataplane.Rules, b.Address) {
				out = append(out, BackendID(p.Name, b.Name))
			}
		}
	}
	return out
}

// allowedByRules reports whether the most specific port-less rule covering
// a allows it.
func allowedByRules(rules []policy.CompiledRule, a netip.Addr) bool {
	best, allow := -1, false
	for _, r := range rules {
		if len(r.Ports) > 0 || r.Protocol != 0 {
			continue
		}
		for _, p := range r.Prefixes {
			if p.Contains(a) && p.Bits() > best {
				best, allow = p.Bits(), !r.Deny
			}
		}
	}
	return allow
}

// commit switches kernel, L7 and store to c, undoing what it did when a
// later step fails; applyMu is held.
func (a *Agent) commit(c *policy.Compiled, d *Desired, doc []byte, restored *StoredPolicy, changed bool) error {
	var prev *policy.Compiled
	if a.current != nil {
		prev = a.current.compiled
	}
	restoreKernel := func() {
		pd, err := a.build(context.Background(), prev)
		if err == nil {
			err = a.write(pd)
		}
		if err != nil {
			a.log.Error("restoring the previous data plane state failed", "err", err)
		}
	}
	var undoAttach func()
	if a.o.Attacher != nil {
		names := c.Dataplane.Interfaces
		if a.o.Role == RoleGPUHost {
			names = c.Dataplane.DecapInterfaces
		}
		var err error
		if undoAttach, err = a.o.Attacher.Attach(names, c.Dataplane.XDPMode); err != nil {
			a.fail(err)
			return fmt.Errorf("attach XDP: %w", err)
		}
	}
	undo := func() {
		if undoAttach != nil {
			undoAttach()
		}
	}
	if err := a.write(d); err != nil {
		undo()
		return err
	}
	if a.o.Gateway != nil {
		if err := a.o.Gateway.Apply(c); err != nil {
			restoreKernel()
			undo()
			a.fail(err)
			return fmt.Errorf("L7 gateway refused the policy: %w", err)
		}
	}
	sp := StoredPolicy{Name: c.Name, Version: c.Version, AppliedAt: time.Now().UTC(), Document: slices.Clone(doc)}
	switch {
	case restored != nil:
		sp = *restored
	case !changed:
		sp = a.current.stored
	default:
		stored, err := a.o.Store.Save(sp)
		if err != nil {
			if a.o.Gateway != nil && prev != nil {
				if gerr := a.o.Gateway.Apply(prev); gerr != nil {
					a.log.Error("restoring the previous L7 configuration failed", "err", gerr)
				}
			}
			restoreKernel()
			undo()
			a.fail(err)
			return fmt.Errorf("store policy: %w", err)
		}
		stored.Document = sp.Document
		sp = stored
	}
	a.current = &applied{stored: sp, compiled: c}
	if a.o.HealthChecks {
		a.health.Set(health.Targets(c, BackendID))
	}
	if a.o.OnApplied != nil {
		a.o.OnApplied(c)
	}
	return nil
}

// DeletePolicy removes the applied policy: the data plane steers nothing.
func (a *Agent) DeletePolicy(ctx context.Context) error {
	a.editMu.Lock()
	defer a.editMu.Unlock()
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	if a.current == nil {
		return ErrNoPolicy
	}
	d, err := a.build(ctx, nil)
	if err != nil {
		return err
	}
	if err := a.write(d); err != nil {
		return err
	}
	if err := a.o.Store.ClearCurrent(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	a.current = nil
	a.health.Set(nil)
	if a.o.OnApplied != nil {
		a.o.OnApplied(nil)
	}
	a.log.Info("policy deleted; nothing is steered")
	return nil
}

// Rollback re-applies a stored version: "previous" is the one before the
// version in force.
func (a *Agent) Rollback(ctx context.Context, to string) (ApplyResult, error) {
	a.editMu.Lock()
	defer a.editMu.Unlock()
	hist, err := a.o.Store.History()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("store: %w", err)
	}
	a.applyMu.Lock()
	cur := ""
	if a.current != nil {
		cur = a.current.stored.Version
	}
	a.applyMu.Unlock()
	if to == "" || to == "previous" {
		to = ""
		for _, h := range hist {
			if h.Version != cur {
				to = h.Version
				break
			}
		}
		if to == "" {
			return ApplyResult{}, &NotFoundError{What: "no earlier version to roll back to"}
		}
	}
	target, ok, err := a.o.Store.Get(to)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("store: %w", err)
	}
	if !ok {
		return ApplyResult{}, &NotFoundError{What: fmt.Sprintf("no stored version %q", to)}
	}
	return a.applyDocument(ctx, target.Document, false, nil)
}

// NotFoundError is answered with 404.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What }

// Current returns the version in force.
func (a *Agent) Current() (StoredPolicy, *policy.Compiled, bool) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	if a.current == nil {
		return StoredPolicy{}, nil, false
	}
	return a.current.stored, a.current.compiled, true
}

// Status reports the agent's state.
func (a *Agent) Status() Status {
	st := Status{Version: a.o.Version, Role: a.o.Role, StartedAt: a.started.UTC(),
		Reconciles: a.reconciles.Load(), ReconcileErrors: a.reconcileErrors.Load(), Interfaces: []InterfaceStatus{}}
	if sp, _, ok := a.Current(); ok {
		st.Policy = PolicyRef{Name: sp.Name, Version: sp.Version}
	}
	if a.o.Attacher != nil {
		st.Interfaces = a.o.Attacher.Status()
	}
	a.mu.Lock()
	st.LastError = a.lastErr
	a.mu.Unlock()
	return st
}

// Backends lists every pool backend with its weights, health and traffic.
func (a *Agent) Backends() []BackendStatus {
	ctrs, _ := a.counters()
	return a.backendsFrom(ctrs)
}

// counters reads the data plane's counters once, for every VIP and
// backend written.
func (a *Agent) counters() (Counters, error) {
	ids, idx := a.rec.BackendIDs(), a.rec.VIPIndices()
	return a.o.Dataplane.Counters(slices.Collect(maps.Values(idx)), slices.Collect(maps.Values(ids)))
}

func (a *Agent) backendsFrom(ctrs Counters) []BackendStatus {
	_, c, ok := a.Current()
	out := []BackendStatus{}
	if !ok {
		return out
	}
	ids := a.rec.BackendIDs()
	hs := a.health.States()
	a.mu.Lock()
	d := a.desired
	loads := maps.Clone(a.loads)
	a.mu.Unlock()
	if a.loadSource != nil {
		maps.Copy(loads, a.loadSource())
	}
	var l7 map[string]api.BackendL7
	if gs, ok := a.o.Gateway.(GatewayBackendStats); ok {
		l7 = gs.BackendL7()
	}
	for _, p := range c.Pools {
		for _, b := range p.Backends {
			id := BackendID(p.Name, b.Name)
			bs := BackendStatus{Pool: p.Name, Name: b.Name, Address: b.Address.String(), Port: b.Port,
				ConfiguredWeight: b.Weight, State: policy.StateActive, Healthy: true}
			if d != nil {
				bs.Weight = d.Effective[id]
			}
			if h, ok := hs[id]; ok {
				bs.Healthy = h.Healthy
			}
			if bs.Weight == 0 {
				bs.State = policy.StateDraining
			}
			if l, ok := loads[id]; ok {
				bs.Load = &l
			}
			if s, ok := l7[id]; ok {
				bs.L7 = &s
			}
			if kid, ok := ids[b.Address]; ok {
				t := ctrs.Backends[kid]
				bs.Packets, bs.Bytes, bs.NewFlows = t.Packets, t.Bytes, t.NewFlows
			}
			out = append(out, bs)
		}
	}
	return out
}

// Stats reads the data plane's counters.
func (a *Agent) Stats() (StatsResponse, error) {
	ctrs, err := a.counters()
	if err != nil {
		return StatsResponse{}, fmt.Errorf("read counters: %w", err)
	}
	return a.statsFrom(ctrs), nil
}

func (a *Agent) statsFrom(ctrs Counters) StatsResponse {
	idx := a.rec.VIPIndices()
	out := StatsResponse{Verdicts: nonNil(ctrs.Verdicts), Drops: nonNil(ctrs.Drops), VIPs: []VIPStats{}, Maps: []MapStats{}}
	names := map[VIPKey]string{}
	if _, c, ok := a.Current(); ok {
		for _, v := range c.Dataplane.VIPs {
			names[VIPKey{v.Address, v.Port, v.Protocol}] = v.Name
		}
	}
	for _, k := range sortedVIPKeys(idx) {
		t := ctrs.VIPs[idx[k]]
		name := names[k]
		if name == "" {
			name = k.String()
		}
		out.VIPs = append(out.VIPs, VIPStats{Name: name, Packets: t.Packets, Bytes: t.Bytes, NewFlows: t.NewFlows})
	}
	for _, m := range ctrs.Maps {
		out.Maps = append(out.Maps, MapStats(m))
	}
	return out
}

func nonNil(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}
