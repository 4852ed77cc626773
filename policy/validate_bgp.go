package policy

import (
	"net/netip"
	"path/filepath"
	"time"
)

// MaxBGPPeers bounds the peers of one balancer.
const MaxBGPPeers = 64

// asTrans is the 2-byte stand-in of 4-byte AS numbers (RFC 6793); no
// speaker may use it as its own.
const asTrans = 23456

// bgp checks the announcement section: numbers, addresses, peers that
// are unique, and announced prefixes that each cover a VIP (a prefix with
// no VIP would draw traffic this balancer drops).
func (v *validator) bgp(p string, b *BGP, vips []VIP) {
	if b == nil {
		return
	}
	v.asn(p+".localASN", b.LocalASN)
	if b.RouterID != "" {
		if a, err := parseAddr(b.RouterID); err != nil || !a.Is4() || a.IsUnspecified() {
			v.add(p+".routerID", "%q is not an IPv4 address (a BGP identifier is 4 bytes)", b.RouterID)
		}
	}
	if b.Listen != "" {
		ap, err := netip.ParseAddrPort(b.Listen)
		switch {
		case err != nil || ap.Addr().Zone() != "":
			v.add(p+".listen", "%q is not address:port (name the address to bind; [v6]:port for IPv6)", b.Listen)
		case ap.Port() == 0:
			v.add(p+".listen", "%q: port 0 is not a port", b.Listen)
		}
	}
	if len(b.Peers) == 0 {
		v.add(p+".peers", "needs at least one peer")
	}
	if len(b.Peers) > MaxBGPPeers {
		v.add(p+".peers", "has %d peers; at most %d", len(b.Peers), MaxBGPPeers)
	}
	seen := uniq{}
	for i, peer := range b.Peers {
		pp := idx(p+".peers", i)
		v.addr(pp+".address", peer.Address)
		if a, err := parseAddr(peer.Address); err == nil {
			v.unique(seen, pp+".address", a.String(), "peer")
		}
		v.asn(pp+".asn", peer.ASN)
		v.port(pp+".port", peer.Port, false)
		if peer.PasswordFile != "" && !filepath.IsAbs(peer.PasswordFile) {
			v.add(pp+".passwordFile", "%q is not an absolute path", peer.PasswordFile)
		}
		v.duration(pp+".holdTime", peer.HoldTime, 3*time.Second, 65535*time.Second)
	}
	vipAddrs := map[netip.Addr]bool{}
	for _, vip := range vips {
		if a, err := parseAddr(vip.Address); err == nil {
			vipAddrs[a] = true
		}
	}
	seenPfx := uniq{}
	for i, s := range b.Announce {
		ap := idx(p+".announce", i)
		pfx, err := netip.ParsePrefix(s)
		if err != nil || pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() {
			v.add(ap, "%q is not a CIDR prefix", s)
			continue
		}
		if pfx.Masked() != pfx {
			v.add(ap, "%q has host bits set (did you mean %s?)", s, pfx.Masked())
			continue
		}
		v.unique(seenPfx, ap, pfx.String(), "prefix")
		covers := false
		for a := range vipAddrs {
			if pfx.Contains(a) {
				covers = true
				break
			}
		}
		if !covers {
			v.add(ap, "%s covers no VIP of spec.dataplane.vips: announcing it would draw traffic this balancer drops", s)
		}
	}
}

func (v *validator) asn(path string, n uint32) {
	switch n {
	case 0:
		v.add(path, "is required (1-4294967295)")
	case asTrans:
		v.add(path, "23456 is AS_TRANS, reserved (RFC 6793)")
	}
}
