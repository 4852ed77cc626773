package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/infergate/infergate/loader"
	"github.com/infergate/infergate/policy"
)

// BalancerDataplane drives a loaded balancer through the loader.
type BalancerDataplane struct {
	B      *loader.Balancer
	pinDir string

	mu  sync.Mutex
	cfg loader.Config
}

// NewBalancerDataplane wraps b, loaded with cfg and pinned in pinDir ("" for
// none).
func NewBalancerDataplane(b *loader.Balancer, cfg loader.Config, pinDir string) *BalancerDataplane {
	if cfg.MaxBackends == 0 {
		cfg.MaxBackends = loader.DefaultMaxBackends
	}
	if cfg.MaxVIPs == 0 {
		cfg.MaxVIPs = loader.DefaultMaxVIPs
	}
	if cfg.AggregateV4 == 0 {
		cfg.AggregateV4 = loader.DefaultAggregateV4
	}
	if cfg.AggregateV6 == 0 {
		cfg.AggregateV6 = loader.DefaultAggregateV6
	}
	return &BalancerDataplane{B: b, cfg: cfg, pinDir: pinDir}
}

// Idle timeouts of the balancer's tables that the kernel never evicts.
const (
	// IdleFlowTimeout: an established flow silent for this long loses its
	// entry (a keep-alive connection idle for longer may be re-steered
	// when it speaks again, as one evicted from the LRU table would be).
	IdleFlowTimeout = time.Hour
	// IdleClientTimeout: a known client silent for this long is forgotten
	// (its next flow spends new-flow budgets again).
	IdleClientTimeout = time.Hour
	// expireEvery is how often ExpireLoop scans them.
	expireEvery = time.Minute
)

// ExpireLoop expires idle established flows and clients every expireEvery
// until ctx ends.
func (d *BalancerDataplane) ExpireLoop(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := d.B.ExpireIdleFlows(IdleFlowTimeout); err != nil {
			log.Warn("expire idle flows", "err", err)
		} else if n > 0 {
			log.Debug("expired idle flows", "flows", n)
		}
		if n, err := d.B.ExpireIdleClients(IdleClientTimeout); err != nil {
			log.Warn("expire idle clients", "err", err)
		} else if n > 0 {
			log.Debug("expired idle clients", "clients", n)
		}
	}
}

// SetFirewall swaps in a new rule set.
func (d *BalancerDataplane) SetFirewall(defaultDeny bool, rules []policy.CompiledRule) error {
	out := make([]loader.Rule, len(rules))
	for i, r := range rules {
		out[i] = loader.Rule{Deny: r.Deny, Prefixes: r.Prefixes, Ports: r.Ports, Protocol: r.Protocol}
	}
	return d.B.SetRules(out, defaultDeny)
}

// SetClasses sets aggregation and client classes; sources in no class are
// unlimited.
func (d *BalancerDataplane) SetClasses(aggV4, aggV6 int, classes []policy.CompiledClass) error {
	d.mu.Lock()
	if aggV4 != d.cfg.AggregateV4 || aggV6 != d.cfg.AggregateV6 {
		cfg := d.cfg
		cfg.AggregateV4, cfg.AggregateV6 = aggV4, aggV6
		if err := d.B.Reconfigure(cfg); err != nil {
			d.mu.Unlock()
			return err
		}
		d.cfg = cfg
	}
	d.mu.Unlock()
	out := make([]loader.Class, len(classes))
	for i, c := range classes {
		out[i] = loader.Class{Prefixes: c.Prefixes, Limits: loader.Limits{
			PacketsPerSecond: c.PacketsPerSecond, PacketBurst: c.PacketBurst,
			NewConnsPerSecond: c.NewConnsPerSecond, NewConnBurst: c.NewConnBurst}}
	}
	return d.B.SetClasses(loader.Limits{}, out)
}

// SetEncapSources sets the outer source prefixes of IPIP packets.
func (d *BalancerDataplane) SetEncapSources(v4, v6 netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v4 == d.cfg.EncapSourceV4 && v6 == d.cfg.EncapSourceV6 {
		return nil
	}
	cfg := d.cfg
	cfg.EncapSourceV4, cfg.EncapSourceV6 = v4, v6
	if err := d.B.Reconfigure(cfg); err != nil {
		return err
	}
	d.cfg = cfg
	return nil
}

// SetBackend writes a backend.
func (d *BalancerDataplane) SetBackend(id uint32, b BackendEntry) error {
	return d.B.SetBackend(id, loader.Backend{Addr: b.Address, MAC: b.MAC, Draining: b.Draining})
}

// DeleteBackend clears a backend.
func (d *BalancerDataplane) DeleteBackend(id uint32) error { return d.B.DeleteBackend(id) }

// SetVIP writes a VIP and swaps its table.
func (d *BalancerDataplane) SetVIP(v VIPEntry, table []uint32) error {
	return d.B.UpsertVIP(loader.VIP{ID: v.Index, Addr: v.Key.Address, Port: v.Key.Port, Protocol: v.Key.Protocol,
		L2: v.L2, NewConnsPerSecond: v.NewConnsPerSecond, NewConnBurst: v.NewConnBurst,
		NewFlowBudget: v.NewFlowBudget, NewFlowBudgetBurst: v.NewFlowBudgetBurst}, table)
}

// DeleteVIP removes a VIP.
func (d *BalancerDataplane) DeleteVIP(k VIPKey) error {
	return d.B.DeleteVIP(loader.VIP{Addr: k.Address, Port: k.Port, Protocol: k.Protocol})
}

// SetLocalVIPs is a GPU host's business; a balancer holds none.
func (d *BalancerDataplane) SetLocalVIPs(v []netip.Addr) error {
	if len(v) > 0 {
		return errors.New("a balancer node has no decapsulator for local VIPs")
	}
	return nil
}

// MaxBackends is the backend table's size.
func (d *BalancerDataplane) MaxBackends() uint32 { return d.cfg.MaxBackends }

// Backends reads the backend table back. Without pinning no earlier agent
// left anything to adopt, so it reads nothing.
func (d *BalancerDataplane) Backends() (map[uint32]BackendEntry, error) {
	out := map[uint32]BackendEntry{}
	if d.pinDir == "" {
		return out, nil
	}
	bs, err := d.B.Backends()
	if err != nil {
		return nil, err
	}
	for id, b := range bs {
		out[id] = BackendEntry{Address: b.Addr, MAC: b.MAC, Draining: b.Draining}
	}
	return out, nil
}

// VIPs reads the VIP table back (address, port, protocol, index and L2;
// the guard's rate is not read back). Without pinning it reads nothing.
func (d *BalancerDataplane) VIPs() (map[VIPKey]VIPEntry, error) {
	out := map[VIPKey]VIPEntry{}
	if d.pinDir == "" {
		return out, nil
	}
	vs, err := d.B.VIPs()
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		key := VIPKey{Address: v.Addr, Port: v.Port, Protocol: v.Protocol}
		out[key] = VIPEntry{Key: key, Index: v.ID, L2: v.L2}
	}
	return out, nil
}

// Counters reads verdicts, drops, the named VIPs' and backends' traffic and
// how full the tables are.
func (d *BalancerDataplane) Counters(vips, backends []uint32) (Counters, error) {
	st, err := d.B.Stats()
	if err != nil {
		return Counters{}, err
	}
	c := Counters{Verdicts: map[string]uint64{}, Drops: map[string]uint64{},
		VIPs: map[uint32]Traffic{}, Backends: map[uint32]Traffic{}}
	for i := loader.Stat(0); i < loader.StatVerdictMax; i++ {
		v := i.Verdict()
		c.Verdicts[v] += st[i]
		if v == "drop" {
			c.Drops[i.String()] += st[i]
		}
	}
	for _, id := range vips {
		t, err := d.B.VIPStats(id)
		if err != nil {
			return c, err
		}
		c.VIPs[id] = Traffic(t)
	}
	for _, id := range backends {
		t, err := d.B.BackendStats(id)
		if err != nil {
			return c, err
		}
		c.Backends[id] = Traffic(t)
	}
	if c.Rules, err = d.B.RuleCounters(); err != nil {
		return c, err
	}
	f, err := d.B.Fill()
	if err != nil {
		return c, err
	}
	sizes := d.cfg.WithDefaults()
	c.Maps = []MapFill{
		{Name: "conntrack", Entries: uint64(f.Flows - f.Flows6), MaxEntries: uint64(sizes.MaxFlows)},
		{Name: "conntrack6", Entries: uint64(f.Flows6), MaxEntries: uint64(sizes.MaxFlows6)},
		{Name: "ct_est4", Entries: uint64(f.EstablishedFlows), MaxEntries: uint64(sizes.MaxEstablishedFlows)},
		{Name: "ct_est6", Entries: uint64(f.EstablishedFlows6), MaxEntries: uint64(sizes.MaxEstablishedFlows)},
		{Name: "rl_buckets", Entries: uint64(f.Buckets), MaxEntries: uint64(sizes.MaxBuckets)},
		{Name: "rl_established", Entries: uint64(f.EstablishedClients), MaxEntries: uint64(sizes.MaxEstablishedClients)},
	}
	return c, nil
}

// DecapDataplane drives a GPU host's decapsulator.
type DecapDataplane struct {
	D *loader.Decap
}

var errNotBalancer = errors.New("a GPU host runs the decapsulator, not the balancer")

// SetFirewall does nothing: GPU hosts filter nothing in XDP.
func (d *DecapDataplane) SetFirewall(bool, []policy.CompiledRule) error { return nil }

// SetClasses is a no-op on GPU hosts.
func (d *DecapDataplane) SetClasses(int, int, []policy.CompiledClass) error { return nil }

// SetBackend is refused: GPU hosts steer nothing.
func (d *DecapDataplane) SetBackend(uint32, BackendEntry) error { return errNotBalancer }

// DeleteBackend is refused.
func (d *DecapDataplane) DeleteBackend(uint32) error { return errNotBalancer }

// SetVIP is refused.
func (d *DecapDataplane) SetVIP(VIPEntry, []uint32) error { return errNotBalancer }

// DeleteVIP is refused.
func (d *DecapDataplane) DeleteVIP(VIPKey) error { return errNotBalancer }

// SetLocalVIPs replaces the decapsulated addresses.
func (d *DecapDataplane) SetLocalVIPs(v []netip.Addr) error { return d.D.SetLocalVIPs(v) }

// SetDecapSources replaces the outer sources whose encapsulated packets are
// decapsulated (the balancers'); every other is dropped.
func (d *DecapDataplane) SetDecapSources(p []netip.Prefix) error { return d.D.SetTrustedSources(p) }

// Backends is empty on a GPU host.
func (d *DecapDataplane) Backends() (map[uint32]BackendEntry, error) {
	return map[uint32]BackendEntry{}, nil
}

// VIPs is empty on a GPU host.
func (d *DecapDataplane) VIPs() (map[VIPKey]VIPEntry, error) { return map[VIPKey]VIPEntry{}, nil }

// MaxBackends is zero: no backends here.
func (d *DecapDataplane) MaxBackends() uint32 { return 0 }

// decapNames name the decapsulator's counters (enum decap_stat_index).
var decapNames = [loader.DecapStatMax]string{"pass_not_ipip", "pass_decapsulated", "pass_not_local", "drop_malformed", "drop_fail",
	"drop_untrusted_source"}

// Counters reads the decapsulator's counters: verdicts "decapsulated"
// (IPIP for a local VIP, passed up without its outer header), "pass" (not
// IPIP, or not for a local VIP: left to the stack) and "drop".
func (d *DecapDataplane) Counters(_, _ []uint32) (Counters, error) {
	st, err := d.D.Stats()
	if err != nil {
		return Counters{}, err
	}
	c := Counters{Verdicts: map[string]uint64{"decapsulated": 0, "pass": 0, "drop": 0}, Drops: map[string]uint64{}}
	for i, v := range st {
		name := decapNames[i]
		switch {
		case strings.HasPrefix(name, "drop_"):
			c.Verdicts["drop"] += v
			c.Drops[name] += v
		case loader.DecapStat(i) == loader.DecapPassDecapsulated:
			c.Verdicts["decapsulated"] += v
		default:
			c.Verdicts["pass"] += v
		}
	}
	return c, nil
}
