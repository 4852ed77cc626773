package loader

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// wordsAddr undoes addrWords: family picks between the first word (IPv4)
// and all four (IPv6).
func wordsAddr(w [4]uint32, fam uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		ne.PutUint32(b[4*i:], w[i])
	}
	if fam == familyV4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// Backends reads the backend table back: every id written by SetBackend and
// not cleared by DeleteBackend. After LoadBalancer adopted pinned maps this
// is what the previous owner left, which lets it keep the ids established
// flows refer to.
func (b *Balancer) Backends() (map[uint32]Backend, error) {
	out := map[uint32]Backend{}
	var id uint32
	var v balancerBackend
	it := b.objs.Backends.Iterate()
	for it.Next(&id, &v) {
		if v.Flags&backendValid == 0 {
			continue
		}
		be := Backend{Addr: wordsAddr(v.Addr, v.Family), Draining: v.Flags&backendDraining != 0}
		if v.Flags&backendHasMAC != 0 {
			be.MAC = net.HardwareAddr(append([]byte(nil), v.Mac[:]...))
		}
		out[id] = be
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("loader: read backends: %w", err)
	}
	return out, nil
}

// VIPs reads the VIP table back, ordered by ID. NewConnsPerSecond and
// NewConnBurst read back zero: the map holds the guard's GCRA interval and
// tolerance, from which the configured rate and burst cannot be recovered
// exactly.
func (b *Balancer) VIPs() ([]VIP, error) {
	// UpsertVIP and DeleteVIP change the hash under b.mu; iterating while
	// keys are deleted could restart the walk and repeat entries.
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []VIP
	var k balancerVipKey
	var m balancerVipMeta
	it := b.objs.Vips.Iterate()
	for it.Next(&k, &m) {
		out = append(out, VIP{ID: m.Id, Addr: wordsAddr(k.Addr, k.Family), Port: htons(k.Port),
			Protocol: k.Proto, L2: m.Flags&vipFlagL2 != 0})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("loader: read VIPs: %w", err)
	}
	slices.SortFunc(out, func(x, y VIP) int { return cmp.Compare(x.ID, y.ID) })
	return out, nil
}
