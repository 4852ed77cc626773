package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/policy"
)

// Roles an agent plays on a node.
const (
	// RoleBalancer faces clients: firewall, rate limits, Maglev steering.
	RoleBalancer = "balancer"
	// RoleGPUHost runs the decapsulator and the L7 gateway in front of the
	// local inference server.
	RoleGPUHost = "gpu-host"
)

// Problem is one reason desired state was refused, in the same shape as
// the policy's own validation problems.
type Problem = policy.Problem

// InvalidError lists every problem found; nothing was applied.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("desired state refused:")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString(";")
		}
		b.WriteString(" ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Hop is how this node reaches an address.
type Hop struct {
	Ifindex int
	Ifname  string
	SrcMAC  net.HardwareAddr
	// MAC of the next hop (the gateway, or the destination when on-link);
	// nil when the neighbour did not answer.
	MAC    net.HardwareAddr
	Source netip.Addr
	OnLink bool
}

// Resolver answers what only the node knows: its interfaces and routes.
type Resolver interface {
	// Interface returns the index of a named interface, or an error when
	// there is none.
	Interface(name string) (int, error)
	// NextHop resolves the route and neighbour towards addr. An error means
	// no route; a Hop with a nil MAC means the neighbour did not answer.
	NextHop(ctx context.Context, addr netip.Addr) (Hop, error)
}

// ErrNoRoute is wrapped by NextHop when there is no usable route.
var ErrNoRoute = errors.New("no route")

// Override is what load reports and health checks say about a backend.
type Override struct {
	// Weight from the GPU load report; used when HasWeight.
	Weight    uint32
	HasWeight bool
	// ReportDrain: the load report says a GPU is broken.
	ReportDrain bool
	// Unhealthy: the health check failed Fall times in a row.
	Unhealthy bool
}

// BackendID names a backend of a pool for overrides and status.
func BackendID(pool, backend string) string { return pool + "/" + backend }

// Desired is the kernel state the reconciler converges to.
type Desired struct {
	// Role decides which maps exist: a balancer's or a GPU host's.
	Role                     string
	DefaultDeny              bool
	Rules                    []policy.CompiledRule
	AggregateV4, AggregateV6 int
	Classes                  []policy.CompiledClass
	// Backends are keyed by address: one kernel entry per host, however
	// many pools name it.
	Backends  map[netip.Addr]BackendEntry
	VIPs      map[VIPKey]DesiredVIP
	LocalVIPs []netip.Addr
	// DecapSources are the outer sources a GPU host's decapsulator
	// accepts; empty accepts none.
	DecapSources []netip.Prefix
	// SourceV4 and SourceV6 are this node's addresses towards the
	// backends: the outer source of IPIP packets when none is configured.
	SourceV4, SourceV6 netip.Addr
	// Effective holds each pool backend's effective weight (BackendID).
	Effective map[string]uint32
	// Panic lists pools whose every backend failed health checks; they keep
	// their configured weights rather than steer nothing.
	Panic []string
	// Unresolved lists backends whose next hop did not answer ARP/ND; they
	// take no new flows until it does.
	Unresolved []netip.Addr
}

// DesiredVIP is a VIP with the weights its Maglev table is built from.
type DesiredVIP struct {
	Entry   VIPEntry
	Name    string
	Weights map[netip.Addr]uint32
}

// BuildOptions are the node facts Build combines with a compiled policy.
type BuildOptions struct {
	Role      string
	Resolver  Resolver
	Overrides map[string]Override
	// MaxBackends bounds the number of distinct backend addresses.
	MaxBackends int
}

// Build turns a compiled policy into desired kernel state for this node,
// checking what policy.Validate cannot: interfaces, routes, duplicate VIPs,
// pools that would steer nothing. It reports every problem at once.
func Build(ctx context.Context, c *policy.Compiled, o BuildOptions) (*Desired, error) {
	d := &Desired{
		Backends:  map[netip.Addr]BackendEntry{},
		VIPs:      map[VIPKey]DesiredVIP{},
		Effective: map[string]uint32{},
		Role:      o.Role,
	}
	if c == nil {
		return d, nil
	}
	var probs []Problem
	add := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	dp := &c.Dataplane
	switch o.Role {
	case RoleBalancer:
		checkInterfaces(o.Resolver, "spec.dataplane.interfaces", dp.Interfaces, add)
	case RoleGPUHost:
		checkInterfaces(o.Resolver, "spec.dataplane.decapInterfaces", dp.DecapInterfaces, add)
		d.LocalVIPs = slices.Clone(dp.LocalVIPs)
		d.DecapSources = slices.Clone(dp.DecapSources)
		seen := map[netip.Addr]int{}
		for i, a := range d.LocalVIPs {
			if j, ok := seen[a]; ok {
				add(fmt.Sprintf("spec.dataplane.localVIPs[%d]", i), "duplicate local VIP %s (also localVIPs[%d])", a, j)
			}
			seen[a] = i
		}
	default:
		add("", "unknown agent role %q (balancer or gpu-host)", o.Role)
	}
	d.DefaultDeny = dp.DefaultDeny
	d.Rules = dp.Rules
	d.AggregateV4, d.AggregateV6 = dp.AggregateV4, dp.AggregateV6
	d.Classes = dp.Classes

	// Effective weights per pool backend, whatever role: the status and the
	// L7 picker use them too.
	for _, p := range c.Pools {
		up := 0
		for _, b := range p.Backends {
			if b.Weight > 0 && !b.Draining && !o.Overrides[BackendID(p.Name, b.Name)].Unhealthy {
				up++
			}
		}
		panicMode := p.HealthCheck != nil && hasPositive(p) && up == 0
		if panicMode {
			d.Panic = append(d.Panic, p.Name)
		}
		for _, b := range p.Backends {
			d.Effective[BackendID(p.Name, b.Name)] = effectiveWeight(p, b, o.Overrides[BackendID(p.Name, b.Name)], panicMode)
		}
	}

	if o.Role != RoleBalancer {
		if len(probs) > 0 {
			return nil, &InvalidError{Problems: probs}
		}
		return d, nil
	}

	// What the compiled form alone shows is the policy package's to judge:
	// the same checks `policy validate` runs.
	for _, p := range policy.DataplaneProblems(c) {
		add(p.Path, "%s", p.Message)
	}
	attached := map[string]bool{}
	for _, n := range dp.Interfaces {
		attached[n] = true
	}
	hops, hopErr := resolveAll(ctx, o.Resolver, c)
	vipAt := map[VIPKey]int{}
	usedByVIP := map[netip.Addr]bool{}
	for vi, v := range dp.VIPs {
		path := fmt.Sprintf("spec.dataplane.vips[%d]", vi)
		key := VIPKey{Address: v.Address, Port: v.Port, Protocol: v.Protocol}
		if j, ok := vipAt[key]; ok {
			add(path, "duplicate VIP %s: vips[%d] (%s) already steers it", key, j, dp.VIPs[j].Name)
			continue
		}
		vipAt[key] = vi
		if v.Pool < 0 || v.Pool >= len(c.Pools) {
			add(path, "VIP %s refers to pool index %d, which does not exist", v.Name, v.Pool)
			continue
		}
		p := c.Pools[v.Pool]
		dv := DesiredVIP{
			Name: v.Name,
			Entry: VIPEntry{Key: key, L2: v.Forwarding == policy.ForwardL2, NewConnsPerSecond: v.NewConnsPerSecond, NewConnBurst: v.NewConnBurst,
				NewFlowBudget: v.NewFlowBudget, NewFlowBudgetBurst: v.NewFlowBudgetBurst},
			Weights: map[netip.Addr]uint32{},
		}
		for bi, b := range p.Backends {
			bpath := fmt.Sprintf("spec.pools[%d].backends[%d]", v.Pool, bi)
			if _, dup := dv.Weights[b.Address]; dup || b.Address.Is4() != v.Address.Is4() {
				continue // reported by DataplaneProblems
			}
			h, err := hops[b.Address], hopErr[b.Address]
			if err != nil {
				add(bpath, "backend %s (%s) has no route from this node: %v", b.Name, b.Address, err)
				continue
			}
			if !attached[h.Ifname] {
				add(bpath, "backend %s (%s) is reached through %s, which the balancer is not attached to (spec.dataplane.interfaces); XDP sends a packet back out of the interface it came in on", b.Name, b.Address, h.Ifname)
				continue
			}
			if dv.Entry.L2 && !h.OnLink {
				add(bpath, "backend %s (%s) is not on-link (routed via %s), but VIP %s uses l2 forwarding", b.Name, b.Address, h.Ifname, v.Name)
				continue
			}
			w := d.Effective[BackendID(p.Name, b.Name)]
			if h.MAC == nil {
				// The neighbour did not answer: the host is probably down.
				// Take it out of new flows rather than refuse the policy;
				// the agent retries soon.
				w = 0
				if !slices.Contains(d.Unresolved, b.Address) {
					d.Unresolved = append(d.Unresolved, b.Address)
				}
			}
			if prev, ok := dv.Weights[b.Address]; !ok || w > prev {
				dv.Weights[b.Address] = w
			}
			usedByVIP[b.Address] = true
			if _, ok := d.Backends[b.Address]; !ok {
				d.Backends[b.Address] = BackendEntry{Address: b.Address, MAC: h.MAC, Draining: true}
				if h.Source.IsValid() {
					if h.Source.Is4() && !d.SourceV4.IsValid() {
						d.SourceV4 = h.Source
					} else if h.Source.Is6() && !d.SourceV6.IsValid() {
						d.SourceV6 = h.Source
					}
				}
			}
		}
		if len(dv.Weights) > 0 && !anyPositive(dv.Weights) {
			// Every backend is out through load reports or unanswered
			// neighbours: spreading new flows beats dropping them all.
			for a := range dv.Weights {
				dv.Weights[a] = 1
			}
			d.Panic = append(d.Panic, p.Name)
		}
		d.VIPs[key] = dv
	}
	// A kernel backend drains only when no VIP gives it a positive weight.
	for _, dv := range d.VIPs {
		for a, w := range dv.Weights {
			if w > 0 {
				e := d.Backends[a]
				e.Draining = false
				d.Backends[a] = e
			}
		}
	}
	// A pool can be in panic for several reasons and behind several VIPs.
	slices.Sort(d.Panic)
	d.Panic = slices.Compact(d.Panic)
	if o.MaxBackends > 0 && len(d.Backends) > o.MaxBackends {
		add("spec.pools", "%d distinct backend addresses behind VIPs, the data plane holds at most %d", len(d.Backends), o.MaxBackends)
	}
	if len(probs) > 0 {
		return nil, &InvalidError{Problems: probs}
	}
	return d, nil
}

// maxParallelResolve bounds concurrent route and neighbour lookups, so a
// pool of dead hosts costs one neighbour wait, not one per host.
const maxParallelResolve = 32

// resolveAll resolves every backend address a VIP uses, in parallel.
func resolveAll(ctx context.Context, r Resolver, c *policy.Compiled) (map[netip.Addr]Hop, map[netip.Addr]error) {
	want := map[netip.Addr]bool{}
	for _, v := range c.Dataplane.VIPs {
		if v.Pool < 0 || v.Pool >= len(c.Pools) {
			continue
		}
		for _, b := range c.Pools[v.Pool].Backends {
			want[b.Address] = true
		}
	}
	hops := make(map[netip.Addr]Hop, len(want))
	errs := map[netip.Addr]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelResolve)
	for a := range want {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			h, err := r.NextHop(ctx, a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[a] = err
				return
			}
			hops[a] = h
		}()
	}
	wg.Wait()
	return hops, errs
}

func anyPositive(w map[netip.Addr]uint32) bool {
	for _, v := range w {
		if v > 0 {
			return true
		}
	}
	return false
}

func checkInterfaces(r Resolver, path string, names []string, add func(string, string, ...any)) {
	seen := map[string]bool{}
	for i, n := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		if seen[n] {
			add(p, "interface %q is listed twice", n)
			continue
		}
		seen[n] = true
		if _, err := r.Interface(n); err != nil {
			add(p, "unknown interface %q on this node: %v", n, err)
		}
	}
}

// hasPositive reports whether a pool has a backend that may take new flows
// by its configuration alone.
func hasPositive(p policy.CompiledPool) bool {
	for _, b := range p.Backends {
		if b.Weight > 0 && !b.Draining {
			return true
		}
	}
	return false
}

func effectiveWeight(p policy.CompiledPool, b policy.CompiledBackend, ov Override, panicMode bool) uint32 {
	if b.Draining || b.Weight == 0 {
		return 0
	}
	if ov.Unhealthy && !panicMode {
		return 0
	}
	if p.LoadReports {
		if ov.ReportDrain {
			return 0
		}
		if ov.HasWeight {
			return score.Effective(b.Weight, ov.Weight)
		}
	}
	return b.Weight
}
