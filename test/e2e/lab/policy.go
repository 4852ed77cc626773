package lab

import (
	"fmt"
	"time"

	"github.com/infergate/infergate/policy"
)

// Policy knobs of the lab's standard document.
type PolicyOptions struct {
	// Name is metadata.name (default "lab").
	Name string
	// Weights per GPU host (default 100 each); 0 leaves a host out of new
	// flows.
	Weights []uint32
	// HealthCheck adds an HTTP health check of /health to the pools.
	HealthCheck bool
	// HealthInterval is its interval (default 200ms).
	HealthInterval time.Duration
	// LoadReports makes the balancer weight the pools by GPU load reports.
	LoadReports bool
	// Deny adds the firewall rule denying Denied4 and Denied6.
	Deny bool
	// ExtraDeny lists more prefixes to deny (rule "extra-deny").
	ExtraDeny []string
	// DefaultPPS and DefaultConns limit every client outside the trusted
	// class (0: unlimited).
	DefaultPPS, DefaultConns uint64
	// Gateway is the spec.gateway section (optional).
	Gateway *policy.Gateway
	// NewFlowBudget is every VIP's new flows per second from unknown
	// sources, burst the same (0: the policy's default).
	NewFlowBudget uint64
	// GatewayVIP steers VIP4:GatewayPort to the GPU hosts' L7 gateways
	// (pool "gateways", TCP health checks).
	GatewayVIP bool
}

// Limits of the trusted client class: far above what a test sends.
const (
	trustedPPS   = 1_000_000
	trustedConns = 100_000
)

// Policy builds the lab's policy document: VIP4 and VIP6 forwarded with
// IPIP, VIP4L2 and VIP6L2 with L2 DSR, each to a pool of the GPU hosts
// (one pool per address family), a trusted client class, and the options.
func (l *Lab) Policy(o PolicyOptions) *policy.Document {
	if o.Name == "" {
		o.Name = "lab"
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 200 * time.Millisecond
	}
	d := &policy.Document{APIVersion: "infergate.dev/v1alpha1", Kind: "Policy", Metadata: policy.Metadata{Name: o.Name}}
	sp := &d.Spec
	dp := &sp.Dataplane
	dp.Interfaces = []string{"eth0"}
	dp.DecapInterfaces = []string{"eth0"}
	dp.XDPMode = "native"
	dp.LocalVIPs = []string{VIP4.String(), VIP6.String()}
	// The GPU hosts decapsulate only what the balancer encapsulated: its
	// agent uses its own address as the outer source.
	dp.DecapSources = []string{l.Balancer.V4.String(), l.Balancer.V6.String()}
	dp.Firewall.DefaultAction = "allow"
	if o.Deny {
		dp.Firewall.Rules = append(dp.Firewall.Rules, policy.FirewallRule{
			Name: "deny-blocked-prefix", Action: "deny", Sources: []string{Denied4.String(), Denied6.String()}})
	}
	if len(o.ExtraDeny) > 0 {
		dp.Firewall.Rules = append(dp.Firewall.Rules, policy.FirewallRule{Name: "extra-deny", Action: "deny", Sources: o.ExtraDeny})
	}
	dp.RateLimits.AggregateV4, dp.RateLimits.AggregateV6 = 32, 128
	dp.RateLimits.Classes = []policy.ClientClass{
		{Name: "trusted-clients", Sources: []string{Trusted4.String(), Trusted6.String()},
			PacketsPerSecond: trustedPPS, PacketBurst: trustedPPS, NewConnsPerSecond: trustedConns, NewConnBurst: trustedConns},
	}
	if o.DefaultPPS > 0 || o.DefaultConns > 0 {
		dp.RateLimits.Classes = append(dp.RateLimits.Classes, policy.ClientClass{
			Name: "everyone-else", Sources: []string{"0.0.0.0/0", "::/0"},
			PacketsPerSecond: o.DefaultPPS, PacketBurst: o.DefaultPPS,
			NewConnsPerSecond: o.DefaultConns, NewConnBurst: o.DefaultConns})
	}
	dp.VIPs = []policy.VIP{
		{Name: "inference-v4", Address: VIP4.String(), Port: ServicePort, Protocol: "tcp", Pool: "gpu-v4", Forwarding: "ipip"},
		{Name: "inference-v6", Address: VIP6.String(), Port: ServicePort, Protocol: "tcp", Pool: "gpu-v6", Forwarding: "ipip"},
		{Name: "inference-v4-l2", Address: VIP4L2.String(), Port: ServicePort, Protocol: "tcp", Pool: "gpu-v4", Forwarding: "l2"},
		{Name: "inference-v6-l2", Address: VIP6L2.String(), Port: ServicePort, Protocol: "tcp", Pool: "gpu-v6", Forwarding: "l2"},
	}
	for _, fam := range []string{"v4", "v6"} {
		p := policy.Pool{Name: "gpu-" + fam, LoadReports: o.LoadReports}
		if o.HealthCheck {
			p.HealthCheck = &policy.HealthCheck{Type: "http", Path: "/health",
				Interval: policy.Duration(o.HealthInterval), Timeout: policy.Duration(o.HealthInterval / 2),
				Rise: 2, Fall: 2}
		}
		for i, g := range l.GPUs {
			addr := g.V4
			if fam == "v6" {
				addr = g.V6
			}
			b := policy.Backend{Name: g.Name, Address: addr.String(), Port: ServicePort, Weight: 100}
			if i < len(o.Weights) {
				b.Weight = o.Weights[i]
			}
			// One load-report target per host: the agent follows a URL for
			// one pool only (reported), and the tests read pool gpu-v4.
			if o.LoadReports && fam == "v4" {
				b.LoadReportURL = fmt.Sprintf("http://%s:%d/load", g.V4, LoadReportPort)
			}
			p.Backends = append(p.Backends, b)
		}
		sp.Pools = append(sp.Pools, p)
	}
	for i := range dp.VIPs {
		dp.VIPs[i].NewFlowBudget, dp.VIPs[i].NewFlowBudgetBurst = o.NewFlowBudget, o.NewFlowBudget
	}
	if o.GatewayVIP {
		dp.VIPs = append(dp.VIPs, policy.VIP{Name: "gateway-v4", Address: VIP4.String(), Port: GatewayPort, Protocol: "tcp", Pool: "gateways", Forwarding: "ipip"})
		p := policy.Pool{Name: "gateways", HealthCheck: &policy.HealthCheck{Type: "tcp",
			Interval: policy.Duration(o.HealthInterval), Timeout: policy.Duration(o.HealthInterval / 2), Rise: 2, Fall: 2}}
		for _, g := range l.GPUs {
			p.Backends = append(p.Backends, policy.Backend{Name: g.Name, Address: g.V4.String(), Port: GatewayPort, Weight: 100})
		}
		sp.Pools = append(sp.Pools, p)
	}
	if o.Gateway != nil {
		sp.Gateway = *o.Gateway
	}
	return d
}

// PolicyYAML is Policy encoded.
func (l *Lab) PolicyYAML(o PolicyOptions) ([]byte, error) {
	b, err := policy.Marshal(l.Policy(o))
	if err != nil {
		return nil, fmt.Errorf("encode lab policy: %w", err)
	}
	return b, nil
}
