package cluster

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// PoolAnnotation on a Service names the VIPPool its VIP comes from;
// without it, the first pool (by name) with a free address of the
// Service's family.
const PoolAnnotation = "infergate.dev/vip-pool"

// VIPPool is a VIPPool object's spec, parsed.
type VIPPool struct {
	Name  string
	CIDRs []netip.Prefix
}

// Allocation is the VIP decided for one Service, or why it has none.
type Allocation struct {
	VIP netip.Addr
	Err string
}

// Allocate decides every Service's VIP from the pools. What a Service's
// status already says is kept while it lies in one of the pools and no
// older Service holds it: that status is the allocator's memory, so
// allocations survive restarts and leader changes without a store of their
// own, and an address is free again once its Service is gone. Services are
// taken oldest first, so of two claiming one address the older keeps it.
// New addresses are the lowest free ones (IPv4 network and broadcast
// addresses are skipped). The result is keyed namespace/name and holds
// only Services that Ours accepts.
func Allocate(pools []VIPPool, svcs []*corev1.Service) map[string]Allocation {
	ours := slices.DeleteFunc(slices.Clone(svcs), func(s *corev1.Service) bool { return !Ours(s) })
	slices.SortFunc(ours, func(a, b *corev1.Service) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	pools = slices.Clone(pools)
	slices.SortFunc(pools, func(a, b VIPPool) int { return cmp.Compare(a.Name, b.Name) })
	used := map[netip.Addr]bool{}
	out := map[string]Allocation{}
	var pending []*corev1.Service
	for _, s := range ours {
		key := s.Namespace + "/" + s.Name
		kept := false
		for _, a := range IngressVIPs(s) {
			if used[a] || !inPools(candidatePools(pools, s), a) || a.Is4() != wantV4(s, pools) {
				continue
			}
			used[a] = true
			out[key] = Allocation{VIP: a}
			kept = true
			break
		}
		if !kept {
			pending = append(pending, s)
		}
	}
	for _, s := range pending {
		key := s.Namespace + "/" + s.Name
		cands := candidatePools(pools, s)
		if len(cands) == 0 {
			out[key] = Allocation{Err: fmt.Sprintf("no VIPPool named %q", s.Annotations[PoolAnnotation])}
			continue
		}
		a, ok := lowestFree(cands, wantV4(s, pools), used)
		if !ok {
			out[key] = Allocation{Err: "no free address in the VIP pools"}
			continue
		}
		used[a] = true
		out[key] = Allocation{VIP: a}
	}
	return out
}

func candidatePools(pools []VIPPool, s *corev1.Service) []VIPPool {
	name, ok := s.Annotations[PoolAnnotation]
	if !ok {
		return pools
	}
	for _, p := range pools {
		if p.Name == name {
			return []VIPPool{p}
		}
	}
	return nil
}

// wantV4 is the Service's primary family: its first ipFamilies entry, else
// IPv4 when any pool has IPv4 addresses.
func wantV4(s *corev1.Service, pools []VIPPool) bool {
	if len(s.Spec.IPFamilies) > 0 {
		return s.Spec.IPFamilies[0] == corev1.IPv4Protocol
	}
	for _, p := range pools {
		for _, c := range p.CIDRs {
			if c.Addr().Is4() {
				return true
			}
		}
	}
	return false
}

func inPools(pools []VIPPool, a netip.Addr) bool {
	for _, p := range pools {
		for _, c := range p.CIDRs {
			if c.Contains(a) && usable(c, a) {
				return true
			}
		}
	}
	return false
}

// usable excludes an IPv4 prefix's network and broadcast addresses
// (prefixes of /31 and /32 have none).
func usable(c netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || c.Bits() >= 31 {
		return true
	}
	if a == c.Masked().Addr() {
		return false
	}
	return a != lastAddr(c)
}

func lastAddr(c netip.Prefix) netip.Addr {
	b := c.Masked().Addr().AsSlice()
	host := len(b)*8 - c.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// lowestFree scans the pools in order for an address not in used. Each
// prefix is scanned at most len(used)+2 addresses deep, so a large IPv6
// prefix costs no more than a small one.
func lowestFree(pools []VIPPool, v4 bool, used map[netip.Addr]bool) (netip.Addr, bool) {
	for _, p := range pools {
		for _, c := range p.CIDRs {
			if c.Addr().Is4() != v4 {
				continue
			}
			c = c.Masked()
			a := c.Addr()
			for i := 0; i <= len(used)+2 && c.Contains(a); i++ {
				if usable(c, a) && !used[a] {
					return a, true
				}
				a = a.Next()
				if !a.IsValid() {
					break
				}
			}
		}
	}
	return netip.Addr{}, false
}

// parsePrefix reads a CIDR, or a bare address as a one-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s: an IPv4-mapped prefix; write it as IPv4", s)
	}
	return p.Masked(), nil
}
