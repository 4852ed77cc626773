package policy

import (
	"net/netip"
	"time"
)

// BGP makes a balancer announce the VIPs it serves to routers, which then
// spread clients over the balancer nodes by ECMP. The same document goes to
// every balancer node, so nothing here is per node: the router ID, when
// left out, is each node's own IPv4 source address towards its first IPv4
// peer.
type BGP struct {
	// LocalASN is this balancer's autonomous system number.
	LocalASN uint32 `yaml:"localASN,omitempty" json:"localASN,omitempty"`
	// RouterID is the BGP identifier (an IPv4 address); default as above.
	RouterID string `yaml:"routerID,omitempty" json:"routerID,omitempty"`
	// Listen, when set ("198.18.1.1:179"), accepts sessions the peers
	// open; when empty the speaker listens on nothing and opens every
	// session itself.
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// Peers are the routers to announce to.
	Peers []BGPPeer `yaml:"peers,omitempty" json:"peers,omitempty"`
	// Announce lists the prefixes announced; default every VIP address as
	// a /32 or /128. Each must cover a VIP.
	Announce []string `yaml:"announce,omitempty" json:"announce,omitempty"`
}

// BGPPeer is one router.
type BGPPeer struct {
	Address string `yaml:"address" json:"address"`
	ASN     uint32 `yaml:"asn" json:"asn"`
	// Port is the peer's BGP port (default 179).
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// PasswordFile holds the TCP MD5 password (RFC 2385) on its first line
	// (absolute path); read at apply, never logged.
	PasswordFile string `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
	// HoldTime is the proposed hold time (default 90s; 3s at least).
	HoldTime Duration `yaml:"holdTime,omitempty" json:"holdTime,omitempty"`
}

// BGP defaults.
const (
	DefaultBGPPort     = 179
	DefaultBGPHoldTime = 90 * time.Second
)

// CompiledBGP is the announcement side of a balancer; nil when off.
type CompiledBGP struct {
	LocalASN uint32
	// RouterID is unset when the node derives its own.
	RouterID netip.Addr
	// Listen is unset when the speaker listens on nothing.
	Listen   netip.AddrPort
	Peers    []CompiledBGPPeer
	Announce []netip.Prefix
}

// CompiledBGPPeer is one router, defaults filled in.
type CompiledBGPPeer struct {
	Address      netip.Addr
	ASN          uint32
	Port         uint16
	PasswordFile string
	HoldTime     time.Duration
}

func setBGPDefaults(b *BGP) {
	if b == nil {
		return
	}
	for i := range b.Peers {
		setInt(&b.Peers[i].Port, DefaultBGPPort)
		setDur(&b.Peers[i].HoldTime, DefaultBGPHoldTime)
	}
}

// canonicalBGP writes addresses and prefixes in one spelling.
func canonicalBGP(b *BGP) {
	if b == nil {
		return
	}
	if b.RouterID != "" {
		b.RouterID = validAddr(b.RouterID).String()
	}
	if ap, err := netip.ParseAddrPort(b.Listen); err == nil {
		b.Listen = ap.String()
	}
	for i := range b.Peers {
		b.Peers[i].Address = validAddr(b.Peers[i].Address).String()
	}
	for i, s := range b.Announce {
		if p, err := netip.ParsePrefix(s); err == nil {
			b.Announce[i] = p.String()
		}
	}
}

// buildBGP compiles a valid document's BGP section; the announced
// prefixes default to the VIP addresses.
func buildBGP(dp *Dataplane) *CompiledBGP {
	b := dp.BGP
	if b == nil {
		return nil
	}
	c := &CompiledBGP{LocalASN: b.LocalASN}
	if b.RouterID != "" {
		c.RouterID = validAddr(b.RouterID)
	}
	if b.Listen != "" {
		c.Listen = netip.MustParseAddrPort(b.Listen)
	}
	for _, p := range b.Peers {
		c.Peers = append(c.Peers, CompiledBGPPeer{Address: validAddr(p.Address), ASN: p.ASN, Port: uint16(p.Port),
			PasswordFile: p.PasswordFile, HoldTime: p.HoldTime.D()})
	}
	for _, s := range b.Announce {
		c.Announce = append(c.Announce, netip.MustParsePrefix(s))
	}
	if len(b.Announce) == 0 {
		seen := map[netip.Addr]bool{}
		for _, v := range dp.VIPs {
			a := validAddr(v.Address)
			if !seen[a] {
				seen[a] = true
				c.Announce = append(c.Announce, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	return c
}
