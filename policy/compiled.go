package policy

import (
	"net/netip"
	"time"
)

// Compiled is a validated, defaulted policy in typed form: addresses parsed,
// names resolved to indices, defaults filled in. It is the one input of both
// the agent's reconciler (kernel maps) and the L7 gateway. It holds no YAML
// concerns and is safe to share read-only between goroutines.
type Compiled struct {
	// Name and Version identify what was applied; Version is a content hash.
	Name    string
	Version string
	// Labels are the document's metadata labels, carried for display.
	Labels map[string]string

	Dataplane CompiledDataplane
	Pools     []CompiledPool
	Gateway   CompiledGateway

	// doc is the canonical document, as JSON, that Compile built this from
	// and Version hashes; Document returns it.
	doc []byte
}

// XDP attach modes.
const (
	XDPModeNative  = "native"
	XDPModeGeneric = "generic"
	XDPModeAuto    = "auto"
)

// CompiledDataplane is the kernel side.
type CompiledDataplane struct {
	Interfaces      []string
	DecapInterfaces []string
	XDPMode         string

	DefaultDeny bool
	Rules       []CompiledRule

	AggregateV4, AggregateV6 int
	Classes                  []CompiledClass

	VIPs      []CompiledVIP
	LocalVIPs []netip.Addr
	// DecapSources: outer sources the decapsulator trusts (hosts as /32
	// or /128); empty trusts none.
	DecapSources []netip.Prefix
	// BGP is nil when the balancer announces nothing.
	BGP *CompiledBGP
}

// CompiledRule: Prefixes hold host addresses as /32 or /128; a rule with no
// Ports matches any port, Protocol 0 any protocol.
type CompiledRule struct {
	Name     string
	Deny     bool
	Prefixes []netip.Prefix
	Ports    []uint16
	Protocol uint8 // IANA number: 6 tcp, 17 udp, 1 icmp (and 58 for v6), 0 any
}

// CompiledClass is a client class; rates are per second, zero unlimited.
type CompiledClass struct {
	Name              string
	Prefixes          []netip.Prefix
	PacketsPerSecond  uint64
	PacketBurst       uint64
	NewConnsPerSecond uint64
	NewConnBurst      uint64
}

// Forwarding modes.
const (
	ForwardIPIP = "ipip"
	ForwardL2   = "l2"
)

// CompiledVIP points at a pool by index into Compiled.Pools.
type CompiledVIP struct {
	Name       string
	Address    netip.Addr
	Port       uint16
	Protocol   uint8
	Pool       int
	Forwarding string
	// NewFlowBudget/NewFlowBudgetBurst: new flows per second from unknown
	// sources (defaulted, never zero).
	NewFlowBudget      uint64
	NewFlowBudgetBurst uint64
	NewConnsPerSecond  uint64
	NewConnBurst       uint64
}

// Backend states.
const (
	StateActive   = "active"
	StateDraining = "draining"
)

// CompiledPool is a pool with defaults applied.
type CompiledPool struct {
	Name        string
	Backends    []CompiledBackend
	HealthCheck *CompiledHealthCheck
	LoadReports bool
	TLS         *PoolTLS
	// KVEvents has its defaults filled (nil: off).
	KVEvents *PoolKVEvents
}

// CompiledBackend is one GPU host.
type CompiledBackend struct {
	Name          string
	Address       netip.Addr
	Port          uint16
	Weight        uint32
	Draining      bool
	LoadReportURL string
}

// CompiledHealthCheck with defaults filled.
type CompiledHealthCheck struct {
	HTTP       bool
	Port       uint16
	Path       string
	Interval   time.Duration
	Timeout    time.Duration
	Rise, Fall int
}

// CompiledGateway is the L7 side; Models and Providers refer to each other
// and to Pools by index.
type CompiledGateway struct {
	Listen       string
	MaxBodyBytes int64
	Tenants      []Tenant // limits as declared; zero = unlimited
	Keys         []CompiledKey
	JWT          []JWTIssuer
	Models       []CompiledModel
	Providers    []Provider
	Inspection   Inspection
	LimitStore   LimitStore
	Audit        Audit
	Timeouts     CompiledTimeouts
	Tracing      Tracing
	Ledger       Ledger

	// TLS is nil for a plain HTTP listener.
	TLS *GatewayTLS
	// Cache is nil when responses are not cached.
	Cache *ResponseCache
}

// CompiledKey is an API key by its SHA-256 hash.
type CompiledKey struct {
	Name   string
	Tenant int // index into CompiledGateway.Tenants
	Hash   [32]byte
	Limits Limits
	Allow  Allow
}

// CompiledModel with aliases and the tokenizer encoding resolved.
type CompiledModel struct {
	Name     string
	Aliases  []string
	Encoding string
	Price    Price
	Routes   []CompiledRoute
	Fallback []CompiledRoute
	Timeouts CompiledTimeouts
	Retries  int
	Cache    ModelCache
	// SpillOverInFlight: see Model.
	SpillOverInFlight int
}

// CompiledRoute targets a pool (Pool >= 0) or a provider (Provider >= 0).
type CompiledRoute struct {
	Pool          int
	Provider      int
	Weight        uint32
	UpstreamModel string
}

// CompiledTimeouts with defaults filled.
type CompiledTimeouts struct {
	Connect          time.Duration
	TimeToFirstToken time.Duration
	Total            time.Duration
}
