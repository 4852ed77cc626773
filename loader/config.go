package loader

import (
	"fmt"
	"net"
	"net/netip"
)

// Default map sizes; every one is a Config field.
const (
	DefaultMaxFlows              = 65536
	DefaultMaxEstablishedFlows   = 65536
	DefaultMaxBuckets            = 65536
	DefaultMaxEstablishedClients = 65536
	DefaultMaxVIPs               = 256
	DefaultMaxBackends           = 4096
	DefaultMaxRules              = 4096
	DefaultMaxClassPrefixes      = 1024
	DefaultMaxLocalVIPs          = 256
	DefaultMaxTrustedSources     = 256 // DEFAULT_DECAP_SOURCES
	DefaultAggregateV4           = 32
	DefaultAggregateV6           = 64

	// MaxEstablishedClientsLimit bounds MaxEstablishedClients: the table
	// is an array of twice as many 64-byte slots (see estSlots).
	MaxEstablishedClientsLimit = 1 << 22
	// MaxClasses is fixed by the classes array in bpf/include/consts.h.
	MaxClasses = 256
	// EntriesPerPrefix is FW_ENTRIES_PER_PREFIX: how many (rule, protocol,
	// port) entries one prefix can carry, covering prefixes' included.
	EntriesPerPrefix = 8
	// MaxMaglevSize bounds a VIP table (Maglev prime sizes beyond this are
	// not needed for 1,000 backends at 100 slots each, with room to spare).
	MaxMaglevSize = 1 << 24
)

// Config sizes the maps (fixed at load) and sets the runtime parameters
// (changeable with Reconfigure). Zero fields take defaults.
type Config struct {
	MaxFlows              uint32 // IPv4 connection table (LRU, shared by all CPUs)
	MaxFlows6             uint32 // IPv6 connection table; 0 = MaxFlows (preallocated: 128 B per entry)
	MaxEstablishedFlows   uint32 // each family's established-flow table (never evicted; Go expires idle flows)
	MaxBuckets            uint32 // rate-limit buckets of new clients (LRU)
	MaxEstablishedClients uint32 // rate-limit buckets of clients with an established flow
	MaxVIPs               uint32
	MaxBackends           uint32
	MaxRules              uint32 // firewall rules (rule ids)
	MaxClassPrefixes      uint32 // per family

	// AggregateV4/V6: prefix length to which a source is masked to form a
	// rate-limit client (e.g. 32 or 24; 64 for IPv6).
	AggregateV4, AggregateV6 int

	// EncapSourceV4/V6: outer source prefix of IPIP packets; host bits carry
	// the flow hash. Needed for IPIP to backends of that family.
	EncapSourceV4, EncapSourceV6 netip.Prefix
	// SourceMAC of transmitted frames; nil keeps the received destination MAC.
	SourceMAC net.HardwareAddr
	// GatewayMAC: next hop of IPIP packets for backends without a MAC.
	GatewayMAC net.HardwareAddr
}

// WithDefaults is c with every zero size and prefix length replaced by the
// value Load uses, so callers can report the sizes actually loaded.
func (c Config) WithDefaults() Config {
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxFlows, DefaultMaxFlows)
	def(&c.MaxFlows6, c.MaxFlows)
	def(&c.MaxEstablishedFlows, DefaultMaxEstablishedFlows)
	def(&c.MaxBuckets, DefaultMaxBuckets)
	def(&c.MaxEstablishedClients, DefaultMaxEstablishedClients)
	def(&c.MaxVIPs, DefaultMaxVIPs)
	def(&c.MaxBackends, DefaultMaxBackends)
	def(&c.MaxRules, DefaultMaxRules)
	def(&c.MaxClassPrefixes, DefaultMaxClassPrefixes)
	if c.AggregateV4 == 0 {
		c.AggregateV4 = DefaultAggregateV4
	}
	if c.AggregateV6 == 0 {
		c.AggregateV6 = DefaultAggregateV6
	}
	return c
}

func (c Config) validate() error {
	if c.AggregateV4 < 1 || c.AggregateV4 > 32 {
		return fmt.Errorf("loader: AggregateV4 %d out of 1..32", c.AggregateV4)
	}
	if c.AggregateV6 < 1 || c.AggregateV6 > 128 {
		return fmt.Errorf("loader: AggregateV6 %d out of 1..128", c.AggregateV6)
	}
	if p := c.EncapSourceV4; p.IsValid() && !p.Addr().Is4() {
		return fmt.Errorf("loader: EncapSourceV4 %s is not IPv4", p)
	}
	if p := c.EncapSourceV6; p.IsValid() && (!p.Addr().Is6() || p.Addr().Is4In6()) {
		return fmt.Errorf("loader: EncapSourceV6 %s is not IPv6", p)
	}
	if c.MaxEstablishedClients > MaxEstablishedClientsLimit {
		return fmt.Errorf("loader: MaxEstablishedClients %d above %d", c.MaxEstablishedClients, MaxEstablishedClientsLimit)
	}
	for _, m := range []net.HardwareAddr{c.SourceMAC, c.GatewayMAC} {
		if m != nil && len(m) != 6 {
			return fmt.Errorf("loader: MAC %s is not 6 bytes", m)
		}
	}
	return nil
}

// addrWords returns a in the kernel's four-word, network-order layout.
func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		w[0] = ne.Uint32(b[:])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = ne.Uint32(b[4*i:])
	}
	return w
}

func family(a netip.Addr) uint32 {
	if a.Is4() || a.Is4In6() {
		return familyV4
	}
	return familyV6
}

// maskWords is the network-order mask of the first bits of a 128-bit (or,
// for v4, 32-bit) address.
func maskWords(bits int, v4 bool) [4]uint32 {
	var w [4]uint32
	if v4 {
		var b [4]byte
		for i := 0; i < bits; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		w[0] = ne.Uint32(b[:])
		return w
	}
	var b [16]byte
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	for i := range w {
		w[i] = ne.Uint32(b[4*i:])
	}
	return w
}

// estSlots is the size of the established clients' table for n clients:
// twice n, rounded up to a power of two, so that the data plane's bounded
// probe window (EST_PROBES slots from a hash) rarely finds it full.
func estSlots(n uint32) uint32 {
	s := uint32(2)
	for s < 2*n {
		s <<= 1
	}
	return s
}
