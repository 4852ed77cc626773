package policy

import (
	"strings"
	"time"
)

// Defaults, written down once. SetDefaults applies them to fields left zero;
// Decode applies the three whose zero means something (weights and retries)
// only when the field is absent.
const (
	DefaultXDPMode        = XDPModeNative
	DefaultFirewallAction = "allow"
	DefaultRuleProtocol   = "any"
	DefaultAggregateV4    = 32
	DefaultAggregateV6    = 64
	DefaultVIPProtocol    = "tcp"
	DefaultForwarding     = ForwardIPIP
	DefaultBackendState   = StateActive
	DefaultBackendWeight  = 100
	DefaultRouteWeight    = 100
	DefaultRetries        = 2
	// DefaultNewFlowBudget is a VIP's new flows per second from sources
	// with no established flow: far above what a fleet of GPU hosts
	// accepts from clients it has never seen, far below a SYN flood.
	DefaultNewFlowBudget = 10000

	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthRise     = 2
	DefaultHealthFall     = 3
	DefaultHealthPath     = "/health"

	DefaultListen          = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 4 << 20
	DefaultMaxMessageBytes = DefaultMaxBodyBytes // a message that fits the body passes
	DefaultConnectTimeout  = 5 * time.Second
	DefaultTTFTTimeout     = 60 * time.Second
	DefaultTotalTimeout    = 10 * time.Minute
	DefaultBudgetWindow    = 720 * time.Hour
	DefaultTenantClaim     = "tenant"
	DefaultJWKSRefresh     = 10 * time.Minute

	EncodingCL100K = "cl100k_base"
	EncodingO200K  = "o200k_base"
)

// o200kPrefixes are model families known to use o200k_base; every other
// model defaults to cl100k_base.
var o200kPrefixes = []string{"gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o"}

// DefaultEncoding is the tokenizer for a model name when none is declared.
func DefaultEncoding(model string) string {
	m := strings.ToLower(model)
	for _, p := range o200kPrefixes {
		if strings.HasPrefix(m, p) {
			return EncodingO200K
		}
	}
	return EncodingCL100K
}

// SetDefaults fills every zero field that has a default. Rates with no burst
// get a burst of one second's worth. It does not touch Backend.Weight,
// Route.Weight or Model.Retries (see Decode).
func SetDefaults(doc *Document) {
	dp := &doc.Spec.Dataplane
	setStr(&dp.XDPMode, DefaultXDPMode)
	setStr(&dp.Firewall.DefaultAction, DefaultFirewallAction)
	for i := range dp.Firewall.Rules {
		setStr(&dp.Firewall.Rules[i].Protocol, DefaultRuleProtocol)
	}
	setInt(&dp.RateLimits.AggregateV4, DefaultAggregateV4)
	setInt(&dp.RateLimits.AggregateV6, DefaultAggregateV6)
	setBGPDefaults(dp.BGP)
	for i := range dp.RateLimits.Classes {
		c := &dp.RateLimits.Classes[i]
		setU64(&c.PacketBurst, c.PacketsPerSecond)
		setU64(&c.NewConnBurst, c.NewConnsPerSecond)
	}
	for i := range dp.VIPs {
		v := &dp.VIPs[i]
		setStr(&v.Protocol, DefaultVIPProtocol)
		setStr(&v.Forwarding, DefaultForwarding)
		setU64(&v.NewConnBurst, v.NewConnsPerSecond)
		setU64(&v.NewFlowBudget, DefaultNewFlowBudget)
		setU64(&v.NewFlowBudgetBurst, v.NewFlowBudget)
	}
	for i := range doc.Spec.Pools {
		p := &doc.Spec.Pools[i]
		for j := range p.Backends {
			setStr(&p.Backends[j].State, DefaultBackendState)
		}
		if hc := p.HealthCheck; hc != nil {
			setDur(&hc.Interval, DefaultHealthInterval)
			setDur(&hc.Timeout, DefaultHealthTimeout)
			setInt(&hc.Rise, DefaultHealthRise)
			setInt(&hc.Fall, DefaultHealthFall)
			if hc.Type == "http" {
				setStr(&hc.Path, DefaultHealthPath)
			}
		}
	}
	g := &doc.Spec.Gateway
	setStr(&g.Listen, DefaultListen)
	if g.MaxBodyBytes == 0 {
		g.MaxBodyBytes = DefaultMaxBodyBytes
	}
	setInt(&g.Inspection.MaxMessageBytes, DefaultMaxMessageBytes)
	setDur(&g.Timeouts.Connect, DefaultConnectTimeout)
	setDur(&g.Timeouts.TimeToFirstToken, DefaultTTFTTimeout)
	setDur(&g.Timeouts.Total, DefaultTotalTimeout)
	for i := range g.Tenants {
		setLimits(&g.Tenants[i].Limits)
	}
	for i := range g.Keys {
		setLimits(&g.Keys[i].Limits)
	}
	for i := range g.JWT {
		j := &g.JWT[i]
		setStr(&j.TenantClaim, DefaultTenantClaim)
		if j.JWKSURL != "" {
			setDur(&j.JWKSRefresh, DefaultJWKSRefresh)
		}
	}
	for i := range g.Models {
		m := &g.Models[i]
		setStr(&m.Encoding, DefaultEncoding(m.Name))
		// A model's timeouts inherit the gateway's field by field.
		setDur(&m.Timeouts.Connect, g.Timeouts.Connect.D())
		setDur(&m.Timeouts.TimeToFirstToken, g.Timeouts.TimeToFirstToken.D())
		setDur(&m.Timeouts.Total, g.Timeouts.Total.D())
	}
}

func setLimits(l *Limits) {
	if l.BudgetUSD > 0 {
		setDur(&l.BudgetWindow, DefaultBudgetWindow)
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setU64(p *uint64, v uint64) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
