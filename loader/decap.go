package loader

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/cilium/ebpf"
)

// DecapConfig sizes the decapsulator's maps.
type DecapConfig struct {
	MaxLocalVIPs uint32
	// MaxTrustedSources bounds the trusted outer-source prefixes, per
	// address family.
	MaxTrustedSources uint32
}

// Decap is the loaded decapsulator (GPU hosts).
type Decap struct {
	objs       decapObjects
	max        uint32
	maxTrusted uint32
}

// LoadDecap loads the decapsulator; pinDir as for LoadBalancer.
func LoadDecap(cfg DecapConfig, pinDir string) (*Decap, error) {
	if cfg.MaxLocalVIPs == 0 {
		cfg.MaxLocalVIPs = DefaultMaxLocalVIPs
	}
	spec, err := loadDecap()
	if err != nil {
		return nil, fmt.Errorf("loader: parse decap object: %w", err)
	}
	if cfg.MaxTrustedSources == 0 {
		cfg.MaxTrustedSources = DefaultMaxTrustedSources
	}
	spec.Maps["local_vips"].MaxEntries = cfg.MaxLocalVIPs
	spec.Maps["decap_src4"].MaxEntries = cfg.MaxTrustedSources
	spec.Maps["decap_src6"].MaxEntries = cfg.MaxTrustedSources
	opts := &ebpf.CollectionOptions{}
	if pinDir != "" {
		if err := os.MkdirAll(pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("loader: pin dir: %w", err)
		}
		for _, ms := range spec.Maps {
			ms.Pinning = ebpf.PinByName
		}
		opts.Maps.PinPath = pinDir
	}
	d := &Decap{max: cfg.MaxLocalVIPs, maxTrusted: cfg.MaxTrustedSources}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("loader: a map pinned in %s does not match the decap program's (remove the pin to start fresh): %w", pinDir, err)
		}
		return nil, fmt.Errorf("loader: load decap: %w", err)
	}
	return d, nil
}

// Program is the XDP program.
func (d *Decap) Program() *ebpf.Program { return d.objs.Decap }

// Close releases handles.
func (d *Decap) Close() error { return d.objs.Close() }

// SetLocalVIPs replaces the set of addresses whose encapsulated packets are
// decapsulated here.
func (d *Decap) SetLocalVIPs(addrs []netip.Addr) error {
	if len(addrs) > int(d.max) {
		return fmt.Errorf("loader: %d local VIPs, MaxLocalVIPs is %d", len(addrs), d.max)
	}
	want := map[balancerAddrKey]bool{}
	for _, a := range addrs {
		if !a.IsValid() {
			return fmt.Errorf("loader: invalid local VIP")
		}
		want[balancerAddrKey{Addr: addrWords(a), Family: family(a)}] = true
	}
	var k balancerAddrKey
	var v uint32
	var stale []balancerAddrKey
	it := d.objs.LocalVips.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("loader: scan local VIPs: %w", err)
	}
	for k := range want {
		if err := d.objs.LocalVips.Update(k, uint32(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("loader: add local VIP: %w", err)
		}
	}
	for _, k := range stale {
		if err := d.objs.LocalVips.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("loader: remove local VIP: %w", err)
		}
	}
	return nil
}

// SetTrustedSources replaces the outer-source prefixes whose encapsulated
// packets are decapsulated: the balancers' encapsulation sources. A packet
// for a local VIP from any other outer source is dropped and counted
// (DecapDropUntrustedSource); with none set, every one is.
func (d *Decap) SetTrustedSources(prefixes []netip.Prefix) error {
	want4 := map[decapLpm4Key]uint32{}
	want6 := map[decapLpm6Key]uint32{}
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("loader: invalid trusted source prefix")
		}
		p = p.Masked()
		if p.Addr().Is4() {
			want4[decapLpm4Key{Prefixlen: uint32(p.Bits()), Addr: addrWords(p.Addr())[0]}] = 1
		} else if p.Addr().Is4In6() {
			return fmt.Errorf("loader: trusted source %s: write IPv4 prefixes in IPv4 form", p)
		} else {
			want6[decapLpm6Key{Prefixlen: uint32(p.Bits()), Addr: addrWords(p.Addr())}] = 1
		}
	}
	if len(want4) > int(d.maxTrusted) || len(want6) > int(d.maxTrusted) {
		return fmt.Errorf("loader: more trusted source prefixes than MaxTrustedSources %d", d.maxTrusted)
	}
	if err := syncLPM(d.objs.DecapSrc4, want4); err != nil {
		return fmt.Errorf("loader: trusted sources v4: %w", err)
	}
	if err := syncLPM(d.objs.DecapSrc6, want6); err != nil {
		return fmt.Errorf("loader: trusted sources v6: %w", err)
	}
	return nil
}

// Stats returns the decapsulator's counters summed over CPUs.
func (d *Decap) Stats() (DecapStats, error) {
	var s DecapStats
	for i := range s {
		v, err := sumPerCPU(d.objs.DecapStats, uint32(i))
		if err != nil {
			return s, fmt.Errorf("loader: decap stat %d: %w", i, err)
		}
		s[i] = v
	}
	return s, nil
}
