package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/infergate/infergate/agent/bgp"
	"github.com/infergate/infergate/agent/health"
	"github.com/infergate/infergate/policy"
)

// Applying, deleting and rolling back policies: every change goes
// through commit, which switches kernel, L7 and store together or undoes
// what it did.

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
	// The node's BGP configuration is resolved before anything changes,
	// so a missing password file refuses the policy with nothing touched.
	var bgpCfg, prevBGP bgp.Config
	if a.o.BGP != nil {
		var err error
		if bgpCfg, err = bgpConfig(c); err != nil {
			return err
		}
		a.mu.Lock()
		prevBGP = a.bgpCfg
		a.mu.Unlock()
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
	restoreGateway := func() {
		if a.o.Gateway != nil && prev != nil {
			if gerr := a.o.Gateway.Apply(prev); gerr != nil {
				a.log.Error("restoring the previous L7 configuration failed", "err", gerr)
			}
		}
	}
	if err := a.applyBGP(bgpCfg); err != nil {
		restoreGateway()
		restoreKernel()
		undo()
		a.fail(err)
		return fmt.Errorf("BGP: %w", err)
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
			if berr := a.applyBGP(prevBGP); berr != nil {
				a.log.Error("restoring the previous BGP configuration failed", "err", berr)
			}
			restoreGateway()
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
	if err := a.applyBGP(bgp.Config{}); err != nil {
		a.log.Error("stopping the BGP speaker failed", "err", err)
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
