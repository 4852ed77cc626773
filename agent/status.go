package agent

import (
	"fmt"
	"maps"
	"slices"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
)

// The read models of the local API: the policy in force, status,
// backends and stats, built from the agent's state and the data plane's
// counters.

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
		Reconciles: a.reconciles.Load(), ReconcileErrors: a.reconcileErrors.Load(), Interfaces: []api.Interface{}}
	if sp, _, ok := a.Current(); ok {
		st.Policy = PolicyRef{Name: sp.Name, Version: sp.Version}
	}
	if a.o.Attacher != nil {
		st.Interfaces = a.o.Attacher.Status()
	}
	a.mu.Lock()
	st.LastError = a.lastErr
	a.mu.Unlock()
	if gs, ok := a.o.Gateway.(GatewayServing); ok {
		if err := gs.ServeErr(); err != nil {
			st.LastError = "L7 gateway listener stopped: " + err.Error()
		}
	}
	st.BGP = a.bgpStatus()
	return st
}

// Backends lists every pool backend with its weights, health and traffic.
func (a *Agent) Backends() []api.Backend {
	ctrs, _ := a.counters()
	return a.backendsFrom(ctrs)
}

// counters reads the data plane's counters once, for every VIP and
// backend written.
func (a *Agent) counters() (Counters, error) {
	ids, idx := a.rec.BackendIDs(), a.rec.VIPIndices()
	return a.o.Dataplane.Counters(slices.Collect(maps.Values(idx)), slices.Collect(maps.Values(ids)))
}

func (a *Agent) backendsFrom(ctrs Counters) []api.Backend {
	_, c, ok := a.Current()
	out := []api.Backend{}
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
			bs := api.Backend{Pool: p.Name, Name: b.Name, Address: b.Address.String(), Port: b.Port,
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
func (a *Agent) Stats() (api.Stats, error) {
	ctrs, err := a.counters()
	if err != nil {
		return api.Stats{}, fmt.Errorf("read counters: %w", err)
	}
	return a.statsFrom(ctrs), nil
}

func (a *Agent) statsFrom(ctrs Counters) api.Stats {
	idx := a.rec.VIPIndices()
	out := api.Stats{Verdicts: nonNil(ctrs.Verdicts), Drops: nonNil(ctrs.Drops), VIPs: []VIPStats{}, Maps: []MapStats{}}
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
