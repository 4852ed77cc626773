package loader

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// fwSlots is FW_SLOTS.
const fwSlots = 2

// fwTables is one rule set, built aside.
type fwTables struct {
	exact4 map[uint32]balancerFwVal
	exact6 map[balancerAddrKey]balancerFwVal
	lpm4   map[balancerLpm4Key]balancerFwVal
	lpm6   map[balancerLpm6Key]balancerFwVal
}

// compileRules turns rules into per-prefix entry lists: a prefix's own
// entries in rule order, then those of covering prefixes, most specific first.
func compileRules(rules []Rule) (fwTables, error) {
	own := map[netip.Prefix][]balancerFwEntry{}
	var order []netip.Prefix
	for i, r := range rules {
		if len(r.Prefixes) == 0 {
			return fwTables{}, fmt.Errorf("loader: rule %d has no prefix", i)
		}
		act := uint8(fwAllow)
		if r.Deny {
			act = fwDeny
		}
		ports := r.Ports
		if len(ports) == 0 {
			ports = []uint16{0}
		}
		for _, p := range r.Prefixes {
			if !p.IsValid() {
				return fwTables{}, fmt.Errorf("loader: rule %d: invalid prefix", i)
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
			}
			p = p.Masked()
			if _, ok := own[p]; !ok {
				order = append(order, p)
			}
			for _, port := range ports {
				own[p] = append(own[p], balancerFwEntry{RuleId: uint32(i), Port: port, Proto: r.Protocol, Action: act})
			}
		}
	}
	lens4, lens6 := sortedPrefixLens(own)
	t := fwTables{
		exact4: map[uint32]balancerFwVal{},
		exact6: map[balancerAddrKey]balancerFwVal{},
		lpm4:   map[balancerLpm4Key]balancerFwVal{},
		lpm6:   map[balancerLpm6Key]balancerFwVal{},
	}
	for _, p := range order {
		entries := append([]balancerFwEntry(nil), own[p]...)
		lens := lens6
		if p.Addr().Is4() {
			lens = lens4
		}
		for _, l := range lens {
			if l >= p.Bits() {
				continue
			}
			q, _ := p.Addr().Prefix(l)
			entries = append(entries, own[q]...)
		}
		if len(entries) > EntriesPerPrefix {
			return fwTables{}, fmt.Errorf("loader: prefix %s carries %d rule entries (own and covering prefixes', one per port), at most %d", p, len(entries), EntriesPerPrefix)
		}
		var v balancerFwVal
		v.Count = uint32(len(entries))
		copy(v.E[:], entries)
		w := addrWords(p.Addr())
		switch {
		case p.Addr().Is4() && p.Bits() == 32:
			t.exact4[w[0]] = v
		case p.Addr().Is4():
			t.lpm4[balancerLpm4Key{Prefixlen: uint32(p.Bits()), Addr: w[0]}] = v
		case p.Bits() == 128:
			t.exact6[balancerAddrKey{Addr: w, Family: familyV6}] = v
		default:
			t.lpm6[balancerLpm6Key{Prefixlen: uint32(p.Bits()), Addr: w}] = v
		}
	}
	return t, nil
}

// fillInner creates an inner map from outer's template, sized for entries,
// and fills it; nil when there are no entries (the slot stays empty and the
// program skips the lookup).
func fillInner[K comparable](outer *ebpf.MapSpec, entries map[K]balancerFwVal) (*ebpf.Map, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	spec := outer.InnerMap.Copy()
	spec.MaxEntries = uint32(len(entries))
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", outer.Name, err)
	}
	if spec.Type == ebpf.Hash {
		keys := make([]K, 0, len(entries))
		vals := make([]balancerFwVal, 0, len(entries))
		for k, v := range entries {
			keys = append(keys, k)
			vals = append(vals, v)
		}
		if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
			m.Close()
			return nil, fmt.Errorf("fill %s: %w", outer.Name, err)
		}
		return m, nil
	}
	for k, v := range entries {
		if err := m.Update(k, &v, ebpf.UpdateNoExist); err != nil {
			m.Close()
			return nil, fmt.Errorf("fill %s: %w", outer.Name, err)
		}
	}
	return m, nil
}

// SetRules replaces the rule set. The new set is built into fresh maps in the
// inactive slot, then one config write switches packets to it and bumps the
// rule generation (established flows re-check on their next packet). Rule i
// counts into RuleCounters()[i].
func (b *Balancer) SetRules(rules []Rule, defaultDeny bool) error {
	if len(rules) > int(b.cfg.MaxRules) {
		return fmt.Errorf("loader: %d rules, MaxRules is %d", len(rules), b.cfg.MaxRules)
	}
	t, err := compileRules(rules)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	next := (b.conf.FwSlot + 1) % fwSlots
	type table struct {
		outer *ebpf.Map
		spec  *ebpf.MapSpec
		build func(*ebpf.MapSpec) (*ebpf.Map, error)
	}
	tables := []table{
		{b.objs.FwExact4, b.spec.Maps["fw_exact4"], func(s *ebpf.MapSpec) (*ebpf.Map, error) { return fillInner(s, t.exact4) }},
		{b.objs.FwExact6, b.spec.Maps["fw_exact6"], func(s *ebpf.MapSpec) (*ebpf.Map, error) { return fillInner(s, t.exact6) }},
		{b.objs.FwLpm4, b.spec.Maps["fw_lpm4"], func(s *ebpf.MapSpec) (*ebpf.Map, error) { return fillInner(s, t.lpm4) }},
		{b.objs.FwLpm6, b.spec.Maps["fw_lpm6"], func(s *ebpf.MapSpec) (*ebpf.Map, error) { return fillInner(s, t.lpm6) }},
	}
	for _, tb := range tables {
		m, err := tb.build(tb.spec)
		if err != nil {
			return fmt.Errorf("loader: rules: %w", err)
		}
		if m == nil {
			err = tb.outer.Delete(next)
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
		} else {
			err = tb.outer.Update(next, m, ebpf.UpdateAny)
			m.Close() // the outer map holds the reference now
		}
		if err != nil {
			return fmt.Errorf("loader: rules: install %s: %w", tb.spec.Name, err)
		}
	}
	c := b.conf
	old := c.FwSlot
	c.FwSlot = next
	c.FwGen++
	c.DefaultDeny = 0
	if defaultDeny {
		c.DefaultDeny = 1
	}
	if err := b.writeConf(c); err != nil {
		return err
	}
	b.rules = len(rules)
	// Programs still running on the old maps hold RCU references; the
	// kernel frees them afterwards.
	for _, tb := range tables {
		if err := tb.outer.Delete(old); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("loader: rules: drop old %s: %w", tb.spec.Name, err)
		}
	}
	return nil
}
