package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// versionHexLen is how many hex digits of the content hash name a version:
// 64 bits, ample for a history of a few dozen versions, short enough to type.
const versionHexLen = 16

// Load decodes, validates and compiles one document: the whole path from
// bytes to what the reconciler and gateway consume.
//
// Structural problems (unknown fields, wrong types) and semantic ones are
// reported together; a semantic problem at or under a path that already has
// a structural one is left out, as it is only its echo.
func Load(r io.Reader) (*Document, *Compiled, error) {
	doc, structural, err := decode(r)
	if err != nil {
		return nil, nil, err
	}
	if len(structural) > 0 {
		return nil, nil, withStructural(doc, structural)
	}
	c, err := Compile(doc)
	if err != nil {
		return nil, nil, err
	}
	return doc, c, nil
}

// Compile validates doc and returns its compiled form with defaults applied.
// doc is not modified. Errors are *ValidationError.
func Compile(doc *Document) (*Compiled, error) {
	d, err := clone(doc)
	if err != nil {
		return nil, err
	}
	SetDefaults(d)
	if err := Validate(d); err != nil {
		return nil, err
	}
	canonicalize(d)
	c := build(d)
	d.pos = nil
	if c.doc, err = json.Marshal(d); err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	sum := sha256.Sum256(c.doc)
	c.Version = hex.EncodeToString(sum[:])[:versionHexLen]
	return c, nil
}

// canonicalize writes every address and prefix of a valid document in one
// spelling (a host prefix as its address, IPv6 in its shortest form), so
// documents that differ only in spelling have the same canonical form and
// version.
func canonicalize(d *Document) {
	dp := &d.Spec.Dataplane
	for i := range dp.Firewall.Rules {
		canonicalSources(dp.Firewall.Rules[i].Sources)
	}
	for i := range dp.RateLimits.Classes {
		canonicalSources(dp.RateLimits.Classes[i].Sources)
	}
	for i := range dp.VIPs {
		dp.VIPs[i].Address = validAddr(dp.VIPs[i].Address).String()
	}
	for i, a := range dp.LocalVIPs {
		dp.LocalVIPs[i] = validAddr(a).String()
	}
	canonicalSources(dp.DecapSources)
	canonicalBGP(dp.BGP)
	for i := range d.Spec.Pools {
		for j := range d.Spec.Pools[i].Backends {
			b := &d.Spec.Pools[i].Backends[j]
			b.Address = validAddr(b.Address).String()
		}
	}
}

func canonicalSources(sources []string) {
	for i, s := range sources {
		if p, err := parseSource(s); err == nil {
			sources[i] = sourceString(p)
		}
	}
}

// withStructural merges structural problems with the semantic problems of
// what could be decoded.
func withStructural(doc *Document, structural []Problem) error {
	ps := problems{pos: doc.pos, list: append([]Problem(nil), structural...)}
	d, err := clone(doc)
	if err == nil {
		SetDefaults(d)
		var ve *ValidationError
		if errors.As(Validate(d), &ve) {
			for _, p := range ve.Problems {
				if !underAny(p.Path, structural) {
					ps.list = append(ps.list, p)
				}
			}
		}
	}
	return ps.err()
}

// underAny reports whether path is, or is inside, one of the problems' paths.
func underAny(path string, ps []Problem) bool {
	for _, p := range ps {
		if p.Path == "" {
			continue
		}
		if path == p.Path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
			return true
		}
	}
	return false
}

// clone deep-copies a document, keeping its line table.
func clone(doc *Document) (*Document, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("copying policy: %w", err)
	}
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("copying policy: %w", err)
	}
	d.pos = doc.pos
	return &d, nil
}

// Canonical returns the canonical YAML of a document: defaults applied,
// addresses normalised, fields in schema order.
func Canonical(doc *Document) ([]byte, error) {
	c, err := Compile(doc)
	if err != nil {
		return nil, err
	}
	return Marshal(c.Document())
}

// IANA protocol numbers used in CompiledRule and CompiledVIP.
const (
	ProtoAny    = 0
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

func protoNumber(s string) uint8 {
	switch s {
	case "tcp":
		return ProtoTCP
	case "udp":
		return ProtoUDP
	case "icmp":
		return ProtoICMP
	}
	return ProtoAny
}

func prefixes(sources []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(sources))
	for _, s := range sources {
		if p, err := parseSource(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// validAddr parses an address validation has already accepted; it never
// fails (or panics) on such input, and gives the zero Addr otherwise.
func validAddr(s string) netip.Addr {
	a, _ := parseAddr(s)
	return a
}

// build turns a defaulted, valid document into the compiled form.
func build(d *Document) *Compiled {
	c := &Compiled{Name: d.Metadata.Name, Labels: copyLabels(d.Metadata.Labels)}
	dp := d.Spec.Dataplane
	cd := &c.Dataplane
	cd.Interfaces = append([]string(nil), dp.Interfaces...)
	cd.DecapInterfaces = append([]string(nil), dp.DecapInterfaces...)
	cd.XDPMode = dp.XDPMode
	cd.DefaultDeny = dp.Firewall.DefaultAction == "deny"
	for _, r := range dp.Firewall.Rules {
		cr := CompiledRule{Name: r.Name, Deny: r.Action == "deny", Prefixes: prefixes(r.Sources), Protocol: protoNumber(r.Protocol)}
		for _, p := range r.Ports {
			cr.Ports = append(cr.Ports, uint16(p))
		}
		cd.Rules = append(cd.Rules, cr)
	}
	cd.AggregateV4, cd.AggregateV6 = dp.RateLimits.AggregateV4, dp.RateLimits.AggregateV6
	for _, cl := range dp.RateLimits.Classes {
		cd.Classes = append(cd.Classes, CompiledClass{
			Name: cl.Name, Prefixes: prefixes(cl.Sources),
			PacketsPerSecond: cl.PacketsPerSecond, PacketBurst: cl.PacketBurst,
			NewConnsPerSecond: cl.NewConnsPerSecond, NewConnBurst: cl.NewConnBurst,
		})
	}
	poolIdx := map[string]int{}
	for i, p := range d.Spec.Pools {
		poolIdx[p.Name] = i
		cp := CompiledPool{Name: p.Name, LoadReports: p.LoadReports, TLS: p.TLS.clone(), KVEvents: p.KVEvents.clone()}
		for _, b := range p.Backends {
			cp.Backends = append(cp.Backends, CompiledBackend{
				Name: b.Name, Address: validAddr(b.Address), Port: uint16(b.Port), Weight: b.Weight,
				Draining: b.State == StateDraining, LoadReportURL: b.LoadReportURL,
			})
		}
		if hc := p.HealthCheck; hc != nil {
			cp.HealthCheck = &CompiledHealthCheck{
				HTTP: hc.Type == "http", Port: uint16(hc.Port), Path: hc.Path,
				Interval: hc.Interval.D(), Timeout: hc.Timeout.D(), Rise: hc.Rise, Fall: hc.Fall,
			}
		}
		c.Pools = append(c.Pools, cp)
	}
	for _, v := range dp.VIPs {
		cd.VIPs = append(cd.VIPs, CompiledVIP{
			Name: v.Name, Address: validAddr(v.Address), Port: uint16(v.Port), Protocol: protoNumber(v.Protocol),
			Pool: poolIdx[v.Pool], Forwarding: v.Forwarding,
			NewConnsPerSecond: v.NewConnsPerSecond, NewConnBurst: v.NewConnBurst,
			NewFlowBudget: v.NewFlowBudget, NewFlowBudgetBurst: v.NewFlowBudgetBurst,
		})
	}
	for _, s := range dp.LocalVIPs {
		cd.LocalVIPs = append(cd.LocalVIPs, validAddr(s))
	}
	if len(dp.DecapSources) > 0 {
		cd.DecapSources = prefixes(dp.DecapSources)
	}
	cd.BGP = buildBGP(&dp)

	g := d.Spec.Gateway
	cg := &c.Gateway
	cg.Listen, cg.MaxBodyBytes = g.Listen, g.MaxBodyBytes
	cg.TLS = g.TLS.clone()
	cg.Tenants = append([]Tenant(nil), g.Tenants...)
	tenantIdx := map[string]int{}
	for i, t := range g.Tenants {
		tenantIdx[t.Name] = i
	}
	for _, k := range g.Keys {
		h, _ := ParseKeyHash(k.Hash)
		cg.Keys = append(cg.Keys, CompiledKey{Name: k.Name, Tenant: tenantIdx[k.Tenant], Hash: h, Limits: k.Limits, Allow: k.Allow})
	}
	cg.JWT = append([]JWTIssuer(nil), g.JWT...)
	cg.Providers = append([]Provider(nil), g.Providers...)
	provIdx := map[string]int{}
	for i, p := range g.Providers {
		provIdx[p.Name] = i
	}
	route := func(r Route) CompiledRoute {
		cr := CompiledRoute{Pool: -1, Provider: -1, Weight: r.Weight, UpstreamModel: r.UpstreamModel}
		if r.Pool != "" {
			cr.Pool = poolIdx[r.Pool]
		} else {
			cr.Provider = provIdx[r.Provider]
		}
		return cr
	}
	for _, m := range g.Models {
		cm := CompiledModel{
			Name: m.Name, Aliases: append([]string(nil), m.Aliases...), Encoding: m.Encoding, Price: m.Price,
			Timeouts: compileTimeouts(m.Timeouts), Retries: m.Retries, Cache: m.Cache, SpillOverInFlight: m.SpillOverInFlight,
		}
		for _, r := range m.Routes {
			cm.Routes = append(cm.Routes, route(r))
		}
		for _, r := range m.Fallback {
			cm.Fallback = append(cm.Fallback, route(r))
		}
		cg.Models = append(cg.Models, cm)
	}
	cg.Inspection = g.Inspection
	cg.Inspection.Rules = append([]InspectionRule(nil), g.Inspection.Rules...)
	cg.LimitStore = g.Limits
	cg.Audit = g.Audit
	cg.Tracing = g.Tracing
	cg.Cache = g.Cache.clone()
	cg.Ledger = g.Ledger
	cg.Timeouts = compileTimeouts(g.Timeouts)
	return c
}

func compileTimeouts(t Timeouts) CompiledTimeouts {
	return CompiledTimeouts{Connect: t.Connect.D(), TimeToFirstToken: t.TimeToFirstToken.D(), Total: t.Total.D()}
}

func copyLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sourceString writes a host prefix as a bare address.
func sourceString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// Document returns the document c was compiled from in its canonical form:
// defaults written out, addresses in one spelling. Compile keeps it rather
// than rebuild it from the compiled form, so build is the one mapping
// between the two and Compile(c.Document()) yields c again. It is nil for a
// Compiled built in Go rather than by Compile, and each call returns a new
// copy.
func (c *Compiled) Document() *Document {
	if c.doc == nil {
		return nil
	}
	var d Document
	if err := json.Unmarshal(c.doc, &d); err != nil {
		return nil // written by Compile from a Document; cannot happen
	}
	return &d
}
