package loader

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Balancer is the loaded balancer program with its maps. Its methods are safe
// for concurrent use.
type Balancer struct {
	mu    sync.Mutex
	cfg   Config
	objs  balancerObjects
	spec  *ebpf.CollectionSpec
	conf  balancerLbConfig
	rules int // rules in the active set, for RuleCounters
	// classLimits: some class has a limit; budgeted: VIPs with a new-flow
	// budget. Either needs the rate limiter's client tracking
	// (config.rl_enabled), which tells known sources from unknown ones.
	classLimits bool
	budgeted    map[uint32]bool
}

// LoadBalancer loads the balancer with maps sized by cfg. With pinDir set,
// maps are pinned there by name, and maps already pinned there are adopted
// (connection table, buckets, rules and VIPs survive a restart); a pinned map
// whose type, key or value size, size or flags differ from cfg's is refused
// with an error wrapping ebpf.ErrMapIncompatible.
func LoadBalancer(cfg Config, pinDir string) (*Balancer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	spec, err := loadBalancer()
	if err != nil {
		return nil, fmt.Errorf("loader: parse balancer object: %w", err)
	}
	sizes := map[string]uint32{
		"conntrack":      cfg.MaxFlows,
		"conntrack6":     cfg.MaxFlows6,
		"ct_est4":        cfg.MaxEstablishedFlows,
		"ct_est6":        cfg.MaxEstablishedFlows,
		"rl_buckets":     cfg.MaxBuckets,
		"rl_established": estSlots(cfg.MaxEstablishedClients),
		"vips":           cfg.MaxVIPs,
		"vip_addrs":      cfg.MaxVIPs,
		"vip_guards":     cfg.MaxVIPs,
		"vip_budgets":    cfg.MaxVIPs,
		"vip_info":       cfg.MaxVIPs,
		"maglev_rings":   cfg.MaxVIPs,
		"vip_stats":      cfg.MaxVIPs,
		"backends":       cfg.MaxBackends,
		"backend_stats":  cfg.MaxBackends,
		"fw_rule_stats":  cfg.MaxRules,
		"class_lpm4":     cfg.MaxClassPrefixes,
		"class_lpm6":     cfg.MaxClassPrefixes,
	}
	for name, n := range sizes {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("loader: balancer object lacks map %s", name)
		}
		ms.MaxEntries = n
	}
	opts := &ebpf.CollectionOptions{}
	if pinDir != "" {
		if err := os.MkdirAll(pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("loader: pin dir: %w", err)
		}
		for _, ms := range spec.Maps {
			ms.Pinning = ebpf.PinByName
		}
		opts.Maps.PinPath = pinDir
		if err := checkPinnedInner(spec, pinDir); err != nil {
			return nil, err
		}
	}
	b := &Balancer{cfg: cfg, spec: spec, budgeted: map[uint32]bool{}}
	if err := spec.LoadAndAssign(&b.objs, opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("loader: a map pinned in %s does not match this program's map (type, key/value size, size or flags changed; remove the pin to start fresh): %w", pinDir, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loader: load balancer: %+v", ve)
		}
		return nil, fmt.Errorf("loader: load balancer: %w", err)
	}
	// Adopted maps keep the rule-set slot and generation.
	if err := b.objs.Config.Lookup(uint32(0), &b.conf); err != nil {
		b.objs.Close()
		return nil, fmt.Errorf("loader: read config: %w", err)
	}
	// An adopted configuration with client tracking on keeps it on until
	// the classes are set again.
	b.classLimits = b.conf.RlEnabled != 0
	for id := uint32(0); id < cfg.MaxVIPs; id++ {
		var m balancerVipMeta
		if b.objs.VipInfo.Lookup(id, &m) == nil && m.Flags&vipFlagValid != 0 && m.Budget != 0 {
			b.budgeted[id] = true
		}
	}
	// The established clients' table: its slot mask, and a random seed for
	// its slot hash, so that clients cannot choose addresses that share a
	// probe window (an adopted table keeps its seed).
	b.conf.RlEstMask = estSlots(cfg.MaxEstablishedClients) - 1
	for b.conf.RlEstSeed == 0 {
		b.conf.RlEstSeed = rand.Uint32()
	}
	// A failed calibration leaves the tick zero: the data plane then reads
	// bpf_ktime_get_coarse_ns, the same clock at a helper call's cost.
	if tick, off, err := rlClock(); err == nil {
		b.conf.ClockTickNs, b.conf.ClockOffsetNs = tick, off
	}
	if err := b.Reconfigure(cfg); err != nil {
		b.objs.Close()
		return nil, err
	}
	return b, nil
}

// Program is the XDP program, for AttachXDP or tests.
func (b *Balancer) Program() *ebpf.Program { return b.objs.Balancer }

// Close releases the program and map handles (pinned maps stay pinned).
func (b *Balancer) Close() error { return b.objs.Close() }

// Reconfigure applies cfg's runtime fields: aggregation, encapsulation
// sources and MACs. Map sizes are fixed at load and ignored here.
func (b *Balancer) Reconfigure(cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conf
	c.Agg4Mask = maskWords(cfg.AggregateV4, true)[0]
	c.Agg6Mask = maskWords(cfg.AggregateV6, false)
	c.Src4Base, c.Src4Hostmask = 0, 0
	if p := cfg.EncapSourceV4; p.IsValid() {
		c.Src4Base = addrWords(p.Masked().Addr())[0]
		c.Src4Hostmask = ^maskWords(p.Bits(), true)[0]
	}
	c.Src6Base, c.Src6Hostmask = [4]uint32{}, [4]uint32{}
	if p := cfg.EncapSourceV6; p.IsValid() {
		c.Src6Base = addrWords(p.Masked().Addr())
		m := maskWords(p.Bits(), false)
		for i := range m {
			c.Src6Hostmask[i] = ^m[i]
		}
	}
	c.SrcMac = [6]uint8{}
	copy(c.SrcMac[:], cfg.SourceMAC)
	c.GwMac, c.HasGwMac = [6]uint8{}, 0
	if cfg.GatewayMAC != nil {
		copy(c.GwMac[:], cfg.GatewayMAC)
		c.HasGwMac = 1
	}
	if err := b.writeConf(c); err != nil {
		return err
	}
	b.cfg.AggregateV4, b.cfg.AggregateV6 = cfg.AggregateV4, cfg.AggregateV6
	b.cfg.EncapSourceV4, b.cfg.EncapSourceV6 = cfg.EncapSourceV4, cfg.EncapSourceV6
	b.cfg.SourceMAC, b.cfg.GatewayMAC = cfg.SourceMAC, cfg.GatewayMAC
	return nil
}

func (b *Balancer) writeConf(c balancerLbConfig) error {
	if err := b.objs.Config.Update(uint32(0), &c, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: write config: %w", err)
	}
	b.conf = c
	return nil
}

// SetClasses sets the default limits (sources in no class) and the classes;
// class i gets id i+1. Prefix entries are replaced in place, so for a moment a
// source may see its old class.
func (b *Balancer) SetClasses(def Limits, classes []Class) error {
	if len(classes)+1 > MaxClasses {
		return fmt.Errorf("loader: %d classes, at most %d", len(classes), MaxClasses-1)
	}
	want4 := map[balancerLpm4Key]uint32{}
	want6 := map[balancerLpm6Key]uint32{}
	for i, c := range classes {
		for _, p := range c.Prefixes {
			if !p.IsValid() {
				return fmt.Errorf("loader: class %d: invalid prefix", i)
			}
			p = p.Masked()
			if p.Addr().Is4() {
				want4[balancerLpm4Key{Prefixlen: uint32(p.Bits()), Addr: addrWords(p.Addr())[0]}] = uint32(i + 1)
			} else {
				want6[balancerLpm6Key{Prefixlen: uint32(p.Bits()), Addr: addrWords(p.Addr())}] = uint32(i + 1)
			}
		}
	}
	if len(want4) > int(b.cfg.MaxClassPrefixes) || len(want6) > int(b.cfg.MaxClassPrefixes) {
		return fmt.Errorf("loader: more class prefixes than MaxClassPrefixes %d", b.cfg.MaxClassPrefixes)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	lims := append([]Limits{def}, make([]Limits, len(classes))...)
	for i, c := range classes {
		lims[i+1] = c.Limits
	}
	for i := 0; i < MaxClasses; i++ {
		var l Limits
		if i < len(lims) {
			l = lims[i]
		}
		v := classLimits(l, coarseTick())
		if err := b.objs.Classes.Update(uint32(i), &v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("loader: write class %d: %w", i, err)
		}
	}
	if err := syncLPM(b.objs.ClassLpm4, want4); err != nil {
		return fmt.Errorf("loader: class prefixes v4: %w", err)
	}
	if err := syncLPM(b.objs.ClassLpm6, want6); err != nil {
		return fmt.Errorf("loader: class prefixes v6: %w", err)
	}
	// Buckets cache their class: a new generation makes them look again.
	c := b.conf
	c.ClassGen++
	limited := false
	for _, l := range lims {
		if l.PacketsPerSecond != 0 || l.NewConnsPerSecond != 0 {
			limited = true
		}
	}
	c.RlEnabled = b.rlEnabled(limited, b.budgeted)
	if err := b.writeConf(c); err != nil {
		return err
	}
	b.classLimits = limited
	return nil
}

// rlEnabled is config.rl_enabled for the given class limits and budgets.
func (b *Balancer) rlEnabled(classLimits bool, budgeted map[uint32]bool) uint32 {
	if classLimits || len(budgeted) > 0 {
		return 1
	}
	return 0
}

// setBudgeted records whether VIP id has a budget and turns client tracking
// on or off to match; b.mu is held.
func (b *Balancer) setBudgeted(id uint32, on bool) error {
	if b.budgeted[id] == on {
		return nil
	}
	next := maps.Clone(b.budgeted)
	if on {
		next[id] = true
	} else {
		delete(next, id)
	}
	if want := b.rlEnabled(b.classLimits, next); want != b.conf.RlEnabled {
		c := b.conf
		c.RlEnabled = want
		if err := b.writeConf(c); err != nil {
			return err
		}
	}
	b.budgeted = next
	return nil
}

func syncLPM[K comparable](m *ebpf.Map, want map[K]uint32) error {
	var stale []K
	var k K
	var v uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for k, v := range want {
		if err := m.Update(k, v, ebpf.UpdateAny); err != nil {
			return err
		}
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

const nsPerSec = uint64(time.Second)

// gcra converts a rate and burst to an emission interval and tolerance. The
// tolerance is at least tick+interval, so that a limiter whose clock
// advances in ticks still admits the full rate.
func gcra(rate, burst, tick uint64) (interval, tolerance uint64) {
	if rate == 0 {
		return 0, 0
	}
	interval = nsPerSec / rate
	if interval == 0 {
		interval = 1
	}
	if burst == 0 {
		burst = 1
	}
	tolerance = interval * burst
	if burst > ^uint64(0)/interval {
		tolerance = ^uint64(0) / 2
	}
	return interval, max(tolerance, tick+interval)
}

func classLimits(l Limits, tick uint64) balancerClassLimits {
	var v balancerClassLimits
	v.PpsIntervalNs, v.PpsToleranceNs = gcra(l.PacketsPerSecond, l.PacketBurst, tick)
	v.ConnIntervalNs, v.ConnToleranceNs = gcra(l.NewConnsPerSecond, l.NewConnBurst, tick)
	return v
}

// coarseTick is the resolution of bpf_ktime_get_coarse_ns, the rate
// limiter's clock (one scheduler tick).
func coarseTick() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil || ts.Nano() <= 0 {
		return uint64(4 * time.Millisecond) // HZ=250, the coarsest common setting
	}
	return uint64(ts.Nano())
}

// monotonicNow is the rate limiter's clock (see clock.go).
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts)
	return uint64(ts.Nano())
}

// ExpireIdleClients deletes established clients' buckets not used for idle;
// it returns how many it deleted. The agent calls it periodically: the
// established table is never evicted by the kernel.
func (b *Balancer) ExpireIdleClients(idle time.Duration) (int, error) {
	now := monotonicNow()
	var old []uint32
	err := b.scanEstablished(func(slot uint32, e *balancerEstClient) {
		if e.State == estUsed && now > e.B.LastSeenNs && now-e.B.LastSeenNs > uint64(idle) {
			old = append(old, slot)
		}
	})
	if err != nil {
		return 0, err
	}
	n := 0
	// A pruned slot becomes a tombstone: lookups probe past it, promotions
	// reuse it.
	tomb := balancerEstClient{State: estDeleted}
	for _, slot := range old {
		if err := b.objs.RlEstablished.Update(slot, &tomb, ebpf.UpdateExist); err == nil {
			n++
		}
	}
	return n, nil
}

// estScanBatch is how many slots of the established clients' table one
// system call reads.
const estScanBatch = 4096

// scanEstablished calls fn for every slot of the established clients' table.
func (b *Balancer) scanEstablished(fn func(slot uint32, e *balancerEstClient)) error {
	keys := make([]uint32, estScanBatch)
	vals := make([]balancerEstClient, estScanBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := b.objs.RlEstablished.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], &vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("loader: scan established clients: %w", err)
		}
	}
}

// SetBackend writes backend id.
func (b *Balancer) SetBackend(id uint32, be Backend) error {
	if id >= b.cfg.MaxBackends {
		return fmt.Errorf("loader: backend id %d >= MaxBackends %d", id, b.cfg.MaxBackends)
	}
	if !be.Addr.IsValid() {
		return fmt.Errorf("loader: backend %d: invalid address", id)
	}
	v := balancerBackend{Addr: addrWords(be.Addr), Family: uint8(family(be.Addr)), Flags: backendValid}
	if be.MAC != nil {
		if len(be.MAC) != 6 {
			return fmt.Errorf("loader: backend %d: MAC %s is not 6 bytes", id, be.MAC)
		}
		copy(v.Mac[:], be.MAC)
		v.Flags |= backendHasMAC
	}
	if be.Draining {
		v.Flags |= backendDraining
	}
	if err := b.objs.Backends.Update(id, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: write backend %d: %w", id, err)
	}
	return nil
}

// DeleteBackend removes backend id; its established flows are re-steered.
func (b *Balancer) DeleteBackend(id uint32) error {
	if id >= b.cfg.MaxBackends {
		return fmt.Errorf("loader: backend id %d >= MaxBackends %d", id, b.cfg.MaxBackends)
	}
	var v balancerBackend
	if err := b.objs.Backends.Update(id, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: clear backend %d: %w", id, err)
	}
	return nil
}

func vipKey(v VIP) balancerVipKey {
	return balancerVipKey{Addr: addrWords(v.Addr), Port: htons(v.Port), Proto: v.Protocol, Family: uint8(family(v.Addr))}
}

func htons(p uint16) uint16 { return p<<8 | p>>8 }

// UpsertVIP adds or updates a VIP and swaps in its Maglev table (backend ids,
// length 1..MaxMaglevSize). The table and its size go in one inner map, so
// the swap is atomic for packets.
func (b *Balancer) UpsertVIP(v VIP, table []uint32) error {
	if v.ID >= b.cfg.MaxVIPs {
		return fmt.Errorf("loader: VIP id %d >= MaxVIPs %d", v.ID, b.cfg.MaxVIPs)
	}
	if !v.Addr.IsValid() {
		return fmt.Errorf("loader: VIP %d: invalid address", v.ID)
	}
	if len(table) == 0 || len(table) > MaxMaglevSize {
		return fmt.Errorf("loader: VIP %d: table of %d entries, want 1..%d", v.ID, len(table), MaxMaglevSize)
	}
	for _, id := range table {
		if id >= b.cfg.MaxBackends {
			return fmt.Errorf("loader: VIP %d: table names backend %d >= MaxBackends", v.ID, id)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()

	inner := b.spec.Maps["maglev_rings"].InnerMap.Copy()
	inner.MaxEntries = uint32(len(table) + 1)
	ring, err := ebpf.NewMap(inner)
	if err != nil {
		return fmt.Errorf("loader: VIP %d: create table: %w", v.ID, err)
	}
	defer ring.Close()
	keys := make([]uint32, len(table)+1)
	vals := make([]uint32, len(table)+1)
	vals[0] = uint32(len(table))
	for i := range keys {
		keys[i] = uint32(i)
		if i > 0 {
			vals[i] = table[i-1]
		}
	}
	if _, err := ring.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("loader: VIP %d: fill table: %w", v.ID, err)
	}
	if err := b.objs.MaglevRings.Update(v.ID, ring, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: VIP %d: swap table: %w", v.ID, err)
	}
	g := balancerVipGuard{}
	g.IntervalNs, g.ToleranceNs = gcra(v.NewConnsPerSecond, v.NewConnBurst, 0) // precise clock
	var old balancerVipGuard
	if b.objs.VipGuards.Lookup(v.ID, &old) == nil && old.IntervalNs == g.IntervalNs {
		g.Tat = old.Tat
	}
	if err := b.objs.VipGuards.Update(v.ID, &g, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: VIP %d: guard: %w", v.ID, err)
	}
	bg := balancerVipGuard{}
	bg.IntervalNs, bg.ToleranceNs = gcra(v.NewFlowBudget, v.NewFlowBudgetBurst, 0) // precise clock
	var oldBudget balancerVipGuard
	if b.objs.VipBudgets.Lookup(v.ID, &oldBudget) == nil && oldBudget.IntervalNs == bg.IntervalNs {
		bg.Tat = oldBudget.Tat
	}
	if err := b.objs.VipBudgets.Update(v.ID, &bg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: VIP %d: new-flow budget: %w", v.ID, err)
	}
	// Client tracking goes on before a VIP says it has a budget.
	if err := b.setBudgeted(v.ID, bg.IntervalNs != 0); err != nil {
		return fmt.Errorf("loader: VIP %d: %w", v.ID, err)
	}
	ak := balancerAddrKey{Addr: addrWords(v.Addr), Family: family(v.Addr)}
	if err := b.objs.VipAddrs.Update(ak, uint32(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: VIP %d: address: %w", v.ID, err)
	}
	meta := balancerVipMeta{Id: v.ID, Flags: vipFlagValid}
	if v.L2 {
		meta.Flags |= vipFlagL2
	}
	if g.IntervalNs != 0 {
		meta.Guard = 1
	}
	if bg.IntervalNs != 0 {
		meta.Budget = 1
	}
	if err := b.objs.VipInfo.Update(v.ID, &meta, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: VIP %d: info: %w", v.ID, err)
	}
	if err := b.objs.Vips.Update(vipKey(v), &meta, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: VIP %d: %w", v.ID, err)
	}
	return b.syncVIPPorts()
}

// syncVIPPorts rebuilds the bitmap of ports that carry a VIP.
func (b *Balancer) syncVIPPorts() error {
	var words [vipPortWords]uint64
	var k balancerVipKey
	var m balancerVipMeta
	it := b.objs.Vips.Iterate()
	for it.Next(&k, &m) {
		p := htons(k.Port)
		words[p>>6] |= 1 << (p & 63)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("loader: scan VIPs: %w", err)
	}
	keys := make([]uint32, vipPortWords)
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := b.objs.VipPorts.BatchUpdate(keys, words[:], nil); err != nil {
		return fmt.Errorf("loader: VIP ports: %w", err)
	}
	return nil
}

// DeleteVIP removes the VIP with v's address, port and protocol.
func (b *Balancer) DeleteVIP(v VIP) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := vipKey(v)
	var meta balancerVipMeta
	if err := b.objs.Vips.Lookup(k, &meta); err != nil {
		return fmt.Errorf("loader: VIP %s:%d/%d: %w", v.Addr, v.Port, v.Protocol, err)
	}
	if err := b.objs.Vips.Delete(k); err != nil {
		return fmt.Errorf("loader: delete VIP: %w", err)
	}
	if err := b.objs.VipInfo.Update(meta.Id, &balancerVipMeta{}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("loader: clear VIP info: %w", err)
	}
	if err := b.objs.MaglevRings.Delete(meta.Id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("loader: delete VIP table: %w", err)
	}
	if err := b.setBudgeted(meta.Id, false); err != nil {
		return fmt.Errorf("loader: VIP %d: %w", meta.Id, err)
	}
	if err := b.syncVIPPorts(); err != nil {
		return err
	}
	// Keep the address while another VIP uses it.
	var ok balancerVipKey
	var om balancerVipMeta
	it := b.objs.Vips.Iterate()
	for it.Next(&ok, &om) {
		if ok.Addr == k.Addr && ok.Family == k.Family {
			return nil
		}
	}
	ak := balancerAddrKey{Addr: k.Addr, Family: uint32(k.Family)}
	if err := b.objs.VipAddrs.Delete(ak); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("loader: delete VIP address: %w", err)
	}
	return nil
}

func sumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	var vals []uint64
	if err := m.Lookup(key, &vals); err != nil {
		return 0, err
	}
	var s uint64
	for _, v := range vals {
		s += v
	}
	return s, nil
}

// Stats returns the counters summed over the possible CPUs.
func (b *Balancer) Stats() (Stats, error) {
	var s Stats
	for i := range s {
		v, err := sumPerCPU(b.objs.Stats, uint32(i))
		if err != nil {
			return s, fmt.Errorf("loader: read stat %s: %w", Stat(i), err)
		}
		s[i] = v
	}
	return s, nil
}

func sumTraffic(m *ebpf.Map, id uint32) (Traffic, error) {
	var vals []balancerTrafficStats
	var t Traffic
	if err := m.Lookup(id, &vals); err != nil {
		return t, err
	}
	for _, v := range vals {
		t.Packets += v.Packets
		t.Bytes += v.Bytes
		t.NewFlows += v.NewFlows
	}
	return t, nil
}

// VIPStats returns VIP id's traffic.
func (b *Balancer) VIPStats(id uint32) (Traffic, error) {
	t, err := sumTraffic(b.objs.VipStats, id)
	if err != nil {
		return t, fmt.Errorf("loader: VIP %d stats: %w", id, err)
	}
	return t, nil
}

// BackendStats returns backend id's traffic.
func (b *Balancer) BackendStats(id uint32) (Traffic, error) {
	t, err := sumTraffic(b.objs.BackendStats, id)
	if err != nil {
		return t, fmt.Errorf("loader: backend %d stats: %w", id, err)
	}
	return t, nil
}

// RuleCounters returns packets matched per rule of the active rule set
// (cumulative since load: a rule id keeps counting across SetRules).
func (b *Balancer) RuleCounters() ([]uint64, error) {
	b.mu.Lock()
	n := b.rules
	b.mu.Unlock()
	out := make([]uint64, n)
	for i := range out {
		v, err := sumPerCPU(b.objs.FwRuleStats, uint32(i))
		if err != nil {
			return nil, fmt.Errorf("loader: rule %d counter: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

func countKeys[K any](m *ebpf.Map) (int, error) {
	var k, next K
	n := 0
	prev := any(nil)
	for {
		if err := m.NextKey(prev, &next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return n, nil
			}
			return n, err
		}
		n++
		k = next
		prev = &k
	}
}

// Fill counts the entries of the connection and rate-limit tables by walking
// their keys (O(entries); the established clients' table O(slots), read in
// batches; meant for a scrape every few seconds).
func (b *Balancer) Fill() (Fill, error) {
	var f Fill
	var err error
	if f.Flows, err = countKeys[balancerFlowKey4](b.objs.Conntrack); err != nil {
		return f, fmt.Errorf("loader: count flows: %w", err)
	}
	if f.Flows6, err = countKeys[balancerFlowKey](b.objs.Conntrack6); err != nil {
		return f, fmt.Errorf("loader: count IPv6 flows: %w", err)
	}
	f.Flows += f.Flows6
	if f.EstablishedFlows, err = countKeys[balancerFlowKey4](b.objs.CtEst4); err != nil {
		return f, fmt.Errorf("loader: count established flows: %w", err)
	}
	if f.EstablishedFlows6, err = countKeys[balancerFlowKey](b.objs.CtEst6); err != nil {
		return f, fmt.Errorf("loader: count established IPv6 flows: %w", err)
	}
	if f.Buckets, err = countKeys[balancerAddrKey](b.objs.RlBuckets); err != nil {
		return f, fmt.Errorf("loader: count buckets: %w", err)
	}
	err = b.scanEstablished(func(_ uint32, e *balancerEstClient) {
		if e.State == estUsed {
			f.EstablishedClients++
		}
	})
	if err != nil {
		return f, err
	}
	return f, nil
}

// sortedPrefixLens returns the distinct prefix lengths per family, longest
// first: covering prefixes are only looked for at lengths that occur.
func sortedPrefixLens(m map[netip.Prefix][]balancerFwEntry) (v4, v6 []int) {
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for p := range m {
		if p.Addr().Is4() {
			seen4[p.Bits()] = true
		} else {
			seen6[p.Bits()] = true
		}
	}
	for l := range seen4 {
		v4 = append(v4, l)
	}
	for l := range seen6 {
		v6 = append(v6, l)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(v4)))
	sort.Sort(sort.Reverse(sort.IntSlice(v6)))
	return v4, v6
}

// checkPinnedInner refuses pinned map-in-map maps whose inner maps have
// another layout than this program's: the kernel's compatibility check (and
// cilium/ebpf's) only sees the outer map, whose value is a map id.
func checkPinnedInner(spec *ebpf.CollectionSpec, pinDir string) error {
	for name, ms := range spec.Maps {
		if ms.InnerMap == nil {
			continue
		}
		outer, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("loader: open pinned %s: %w", name, err)
		}
		err = func() error {
			defer outer.Close()
			info, err := outer.Info()
			if err != nil {
				return err
			}
			for slot := uint32(0); slot < info.MaxEntries; slot++ {
				var id uint32
				if outer.Lookup(slot, &id) != nil {
					continue
				}
				inner, err := ebpf.NewMapFromID(ebpf.MapID(id))
				if err != nil {
					return err
				}
				ii, err := inner.Info()
				inner.Close()
				if err != nil {
					return err
				}
				want := ms.InnerMap
				if ii.Type != want.Type || ii.KeySize != want.KeySize || ii.ValueSize != want.ValueSize || ii.Flags != want.Flags {
					return fmt.Errorf("%w: pinned map %s holds inner maps of type %v key %d value %d flags %#x, this program wants %v key %d value %d flags %#x (remove the pin to start fresh)",
						ebpf.ErrMapIncompatible, name, ii.Type, ii.KeySize, ii.ValueSize, ii.Flags, want.Type, want.KeySize, want.ValueSize, want.Flags)
				}
				return nil // one populated slot tells the layout
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("loader: %w", err)
		}
	}
	return nil
}
