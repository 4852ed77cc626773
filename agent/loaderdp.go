package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

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
		L2: v.L2, NewConnsPerSecond: v.NewConnsPerSecond, NewConnBurst: v.NewConnBurst}, table)
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

// Layouts of the pinned maps the agent reads back (bpf/include/structs.h:
// struct backend, vip_key, vip_meta). The loader refuses a pinned map whose
// sizes differ from the program's, so these can only drift together with
// the C structs, which TestReadBackLayouts checks.
type pinnedBackend struct {
	Addr   [4]uint32
	MAC    [6]uint8
	Family uint8
	Flags  uint8
}

type pinnedVIPKey struct {
	Addr   [4]uint32
	Port   uint16 // network order
	Proto  uint8
	Family uint8
}

type pinnedVIPMeta struct {
	ID, Flags, Guard, Pad uint32
}

// Flag bits of the pinned structs (bpf/include/consts.h).
const (
	pinnedBackendValid  = 1 << 0
	pinnedBackendDrain  = 1 << 1
	pinnedBackendHasMAC = 1 << 2
	pinnedVIPL2         = 1 << 0
	pinnedFamilyV4      = 4
)

func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[4*i:], w[i])
	}
	if family == pinnedFamilyV4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func (d *BalancerDataplane) pinned(name string) (*ebpf.Map, error) {
	if d.pinDir == "" {
		return nil, nil
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(d.pinDir, name), &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return m, err
}

// Backends reads the pinned backend table.
func (d *BalancerDataplane) Backends() (map[uint32]BackendEntry, error) {
	out := map[uint32]BackendEntry{}
	m, err := d.pinned("backends")
	if err != nil || m == nil {
		return out, err
	}
	defer m.Close()
	var id uint32
	var v pinnedBackend
	it := m.Iterate()
	for it.Next(&id, &v) {
		if v.Flags&pinnedBackendValid == 0 {
			continue
		}
		e := BackendEntry{Address: wordsAddr(v.Addr, v.Family), Draining: v.Flags&pinnedBackendDrain != 0}
		if v.Flags&pinnedBackendHasMAC != 0 {
			e.MAC = net.HardwareAddr(append([]byte(nil), v.MAC[:]...))
		}
		out[id] = e
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read pinned backends: %w", err)
	}
	return out, nil
}

// VIPs reads the pinned VIP table.
func (d *BalancerDataplane) VIPs() (map[VIPKey]VIPEntry, error) {
	out := map[VIPKey]VIPEntry{}
	m, err := d.pinned("vips")
	if err != nil || m == nil {
		return out, err
	}
	defer m.Close()
	var k pinnedVIPKey
	var v pinnedVIPMeta
	it := m.Iterate()
	for it.Next(&k, &v) {
		key := VIPKey{Address: wordsAddr(k.Addr, k.Family), Port: k.Port<<8 | k.Port>>8, Protocol: k.Proto}
		out[key] = VIPEntry{Key: key, Index: v.ID, L2: v.Flags&pinnedVIPL2 != 0}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read pinned VIPs: %w", err)
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
	maxFlows, maxBuckets, maxEst := d.cfg.MaxFlows, d.cfg.MaxBuckets, d.cfg.MaxEstablishedClients
	if maxFlows == 0 {
		maxFlows = loader.DefaultMaxFlows
	}
	if maxBuckets == 0 {
		maxBuckets = loader.DefaultMaxBuckets
	}
	if maxEst == 0 {
		maxEst = loader.DefaultMaxEstablishedClients
	}
	c.Maps = []MapFill{
		{Name: "conntrack", Entries: uint64(f.Flows), MaxEntries: uint64(maxFlows)},
		{Name: "rl_buckets", Entries: uint64(f.Buckets), MaxEntries: uint64(maxBuckets)},
		{Name: "rl_established", Entries: uint64(f.EstablishedClients), MaxEntries: uint64(maxEst)},
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

// Backends is empty on a GPU host.
func (d *DecapDataplane) Backends() (map[uint32]BackendEntry, error) {
	return map[uint32]BackendEntry{}, nil
}

// VIPs is empty on a GPU host.
func (d *DecapDataplane) VIPs() (map[VIPKey]VIPEntry, error) { return map[VIPKey]VIPEntry{}, nil }

// MaxBackends is zero: no backends here.
func (d *DecapDataplane) MaxBackends() uint32 { return 0 }

// decapNames name the decapsulator's counters (enum decap_stat_index).
var decapNames = [loader.DecapStatMax]string{"pass_not_ipip", "pass_decapsulated", "pass_not_local", "drop_malformed", "drop_fail"}

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
