package agent

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/infergate/infergate/policy"
)

// Dataplane is what the reconciler needs from the loaded XDP objects. Every
// Set call is atomic on its own: a rule set, a class set or a VIP's Maglev
// table is built beside the live one and swapped in, so a packet sees either
// the old or the new version, never a mix. The reconciler orders calls so
// that a VIP never points at a backend that is not yet written.
type Dataplane interface {
	// SetFirewall replaces every firewall rule and the default action.
	SetFirewall(defaultDeny bool, rules []policy.CompiledRule) error
	// SetClasses replaces the client classes and the aggregation prefixes.
	SetClasses(aggregateV4, aggregateV6 int, classes []policy.CompiledClass) error
	// SetBackend writes one backend entry (address, next hop, state).
	SetBackend(id uint32, b BackendEntry) error
	// DeleteBackend removes a backend no VIP refers to any more.
	DeleteBackend(id uint32) error
	// SetVIP writes a VIP and swaps in its Maglev table of backend IDs.
	SetVIP(v VIPEntry, table []uint32) error
	// DeleteVIP stops steering a VIP.
	DeleteVIP(k VIPKey) error
	// SetLocalVIPs replaces the VIPs the decapsulator accepts (GPU hosts).
	SetLocalVIPs(vips []netip.Addr) error

	// Backends and VIPs read back what the maps hold, so an agent that
	// adopts pinned maps keeps backend IDs (which conntrack entries refer
	// to) and rewrites nothing that is already right.
	Backends() (map[uint32]BackendEntry, error)
	VIPs() (map[VIPKey]VIPEntry, error)

	// MaxBackends is the size of the backend table: IDs are below it.
	MaxBackends() uint32
	// Counters reads the data plane's counters summed over CPUs, with the
	// traffic of the VIPs and backends named.
	Counters(vips, backends []uint32) (Counters, error)
}

// VIPKey identifies a VIP in the kernel: address, port, protocol.
type VIPKey struct {
	Address  netip.Addr
	Port     uint16
	Protocol uint8
}

func (k VIPKey) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.Address, k.Port), protoName(k.Protocol))
}

// VIPEntry is a VIP as the kernel holds it.
type VIPEntry struct {
	Key               VIPKey
	Index             uint32 // stable small number for per-VIP counters
	L2                bool   // MAC rewrite instead of IPIP
	NewConnsPerSecond uint64
	NewConnBurst      uint64
	// NewFlowBudget/NewFlowBudgetBurst: new flows per second from sources
	// with no established flow.
	NewFlowBudget      uint64
	NewFlowBudgetBurst uint64
}

// BackendEntry is a backend as the kernel holds it: its address, the MAC
// of the next hop towards it (the backend itself when on-link) and whether
// it takes new flows.
type BackendEntry struct {
	Address  netip.Addr
	MAC      net.HardwareAddr
	Draining bool
}

func (b BackendEntry) equal(o BackendEntry) bool {
	return b.Address == o.Address && b.MAC.String() == o.MAC.String() && b.Draining == o.Draining
}

// Counters are the data plane's counters summed over CPUs.
type Counters struct {
	Verdicts map[string]uint64
	Drops    map[string]uint64
	VIPs     map[uint32]Traffic // by VIPEntry.Index
	Backends map[uint32]Traffic // by backend ID
	Maps     []MapFill
	// Rules counts packets matched per firewall rule, in policy order.
	Rules []uint64
}

// Traffic counts packets, bytes and new flows.
type Traffic struct {
	Packets, Bytes, NewFlows uint64
}

// MapFill says how full a map is.
type MapFill struct {
	Name       string
	Entries    uint64
	MaxEntries uint64
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 0:
		return "any"
	}
	return fmt.Sprintf("proto%d", p)
}
