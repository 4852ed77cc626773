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
}

// Decap is the loaded decapsulator (GPU hosts).
type Decap struct {
	objs decapObjects
	max  uint32
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
	spec.Maps["local_vips"].MaxEntries = cfg.MaxLocalVIPs
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
	d := &Decap{max: cfg.MaxLocalVIPs}
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
