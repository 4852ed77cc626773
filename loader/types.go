package loader

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// ne reads and writes byte slices in the host's (little-endian, bpfel)
// order, so that a network-order address copied byte for byte lands in a
// uint32 the way the kernel stores it.
var ne = binary.NativeEndian

const (
	familyV4 = 4
	familyV6 = 6

	fwAllow = 1
	fwDeny  = 2

	vipFlagL2    = 1 << 0
	vipFlagValid = 1 << 1
	vipPortWords = 1024 // VIP_PORT_WORDS

	// est_client.state (EST_* in bpf/include/consts.h)
	estUsed    = 2
	estDeleted = 3

	backendValid    = 1 << 0
	backendDraining = 1 << 1
	backendHasMAC   = 1 << 2
)

// Limits of a client class, per second; a zero rate is unlimited. A zero
// burst with a non-zero rate means a burst of 1.
type Limits struct {
	PacketsPerSecond  uint64
	PacketBurst       uint64
	NewConnsPerSecond uint64
	NewConnBurst      uint64
}

// Class: sources within Prefixes get Limits.
type Class struct {
	Prefixes []netip.Prefix
	Limits   Limits
}

// Rule is a firewall rule. Prefixes are source prefixes (host addresses as
// /32 or /128); Ports empty = any destination port; Protocol 0 = any.
type Rule struct {
	Deny     bool
	Prefixes []netip.Prefix
	Ports    []uint16
	Protocol uint8
}

// VIP is a service address. ID (< Config.MaxVIPs) is chosen by the caller
// and indexes the VIP's statistics and table.
type VIP struct {
	ID       uint32
	Addr     netip.Addr
	Port     uint16
	Protocol uint8
	// L2 selects L2 DSR (MAC rewrite) instead of IPIP encapsulation.
	L2 bool
	// NewConnsPerSecond/NewConnBurst guard the VIP against new-connection
	// floods from all clients together; zero = no guard.
	NewConnsPerSecond uint64
	NewConnBurst      uint64
	// NewFlowBudget/NewFlowBudgetBurst bound the new flows per second from
	// sources with no established state (no flow of theirs has carried a
	// packet past the handshake), such as a spoofed-source SYN flood's;
	// known clients do not spend it. Zero = no budget. A budget turns the
	// client tracking of the rate limiter on even when no class has limits.
	NewFlowBudget      uint64
	NewFlowBudgetBurst uint64
}

// Backend is a real server. MAC is the next hop for it (for L2 DSR, the
// backend's own MAC, which L2 requires); nil uses Config.GatewayMAC.
type Backend struct {
	Addr     netip.Addr
	MAC      net.HardwareAddr
	Draining bool
}

// Traffic is per-VIP or per-backend traffic.
type Traffic struct {
	Packets, Bytes, NewFlows uint64
}

// Fill is how many entries the tables hold.
type Fill struct {
	Flows              int // connection table entries, IPv4 and IPv6 (tables of MaxFlows and MaxFlows6)
	Flows6             int // of which IPv6
	Buckets            int // LRU rate-limit buckets
	EstablishedClients int
	EstablishedFlows   int // established-flow table entries, IPv4 (MaxEstablishedFlows)
	EstablishedFlows6  int // established-flow table entries, IPv6 (MaxEstablishedFlows)
}
