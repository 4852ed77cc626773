package policy

import (
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validation bounds.
const (
	MaxNameLen          = 63
	MaxLabels           = 64
	MaxLabelLen         = 253
	MaxInterfaceNameLen = 15 // IFNAMSIZ - 1
	MaxWeight           = 10000
	MaxBackendsPerPool  = 1024
	MaxRate             = 1_000_000_000 // per second, packets or connections
	MaxRetries          = 10
	MaxHealthRiseFall   = 100
	MinHealthInterval   = 100 * time.Millisecond
	MaxHealthInterval   = time.Hour
	MinMaxBodyBytes     = 1 << 10
	MaxMaxBodyBytes     = 1 << 30
	MaxPatternLen       = 4096
	MaxDenyWords        = 5000
	MaxPriceUSDPerMTok  = 10000
	// MaxClasses is what the XDP program's class array holds (256, one
	// reserved for sources in no class).
	MaxClasses = 255
)

// Enumerations accepted in documents (the empty string takes the default).
var (
	xdpModes       = []string{XDPModeNative, XDPModeGeneric, XDPModeAuto}
	fwActions      = []string{"allow", "deny"}
	ruleProtocols  = []string{"tcp", "udp", "icmp", "any"}
	vipProtocols   = []string{"tcp", "udp"}
	forwardings    = []string{ForwardIPIP, ForwardL2}
	backendStates  = []string{StateActive, StateDraining}
	healthTypes    = []string{"tcp", "http"}
	encodings      = []string{EncodingCL100K, EncodingO200K}
	inspectActions = []string{"block", "redact", "flag"}
	// Detectors the prompt inspector implements.
	Detectors = []string{"email", "phone", "credit-card", "iban", "us-ssn", "ip-address",
		"cloud-key", "private-key", "api-token", "injection", "unicode-smuggling", "regex", "deny-list"}
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)

// Validate checks a decoded document's meaning: ranges, enumerations,
// duplicates and references. It returns nil or a *ValidationError listing
// every problem, with line numbers when doc came from Decode.
func Validate(doc *Document) error {
	v := &validator{ps: problems{pos: doc.pos}}
	v.document(doc)
	return v.ps.err()
}

type validator struct {
	ps problems
}

func (v *validator) add(path, format string, args ...any) { v.ps.add(path, format, args...) }

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func (v *validator) name(path, s string) {
	switch {
	case s == "":
		v.add(path, "is required")
	case len(s) > MaxNameLen:
		v.add(path, "%q is longer than %d characters", s, MaxNameLen)
	case !nameRE.MatchString(s):
		v.add(path, "%q is not a valid name (lowercase letters, digits, '-', '.', '_'; starting and ending with a letter or digit)", s)
	}
}

func (v *validator) enum(path, s string, allowed []string, emptyOK bool) {
	if s == "" && emptyOK {
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	if s == "" {
		v.add(path, "is required (one of %s)", strings.Join(allowed, ", "))
		return
	}
	v.add(path, "%q is not one of %s", s, strings.Join(allowed, ", "))
}

// unique reports a name seen before under the same kind.
type uniq map[string]string

func (v *validator) unique(seen uniq, path, key, what string) {
	if key == "" {
		return
	}
	if first, dup := seen[key]; dup {
		v.add(path, "duplicate %s %q (also at %s)", what, key, first)
		return
	}
	seen[key] = path
}

func (v *validator) port(path string, p int, zeroOK bool) {
	if p == 0 && zeroOK {
		return
	}
	if p < 1 || p > 65535 {
		v.add(path, "%d is not a port (1-65535)", p)
	}
}

func (v *validator) rate(path string, r uint64) {
	if r > MaxRate {
		v.add(path, "%d is more than %d per second", r, uint64(MaxRate))
	}
}

func (v *validator) burst(path string, burst, rate uint64, rateField string) {
	if burst != 0 && rate == 0 {
		v.add(path, "a burst needs %s", rateField)
	}
	v.rate(path, burst)
}

// source checks an address or a CIDR prefix with no host bits set.
func (v *validator) source(path, s string) {
	if s == "" {
		v.add(path, "is empty")
		return
	}
	if _, err := parseSource(s); err != nil {
		v.add(path, "%v", err)
	}
}

func parseSource(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has a zone", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write the IPv4 form", s)
		}
		return p, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write %s", s, a.Unmap())
	}
	return a, nil
}

func (v *validator) addr(path, s string) {
	if s == "" {
		v.add(path, "is required")
		return
	}
	a, err := parseAddr(s)
	if err != nil {
		v.add(path, "%v", err)
		return
	}
	if a.IsUnspecified() || a.IsMulticast() {
		v.add(path, "%s cannot be a unicast destination", s)
	}
}

func (v *validator) httpURL(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(path, "%q is not an http(s) URL", s)
	}
}

func (v *validator) hostPort(path, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(path, "%q is not host:port", s)
		return
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		v.add(path, "%q: %s is not a port", s, port)
	}
	_ = host
}

func (v *validator) duration(path string, d Duration, lo, hi time.Duration) {
	if d == 0 {
		return
	}
	if d.D() < lo || d.D() > hi {
		v.add(path, "%s is outside %s..%s", d.D(), lo, hi)
	}
}

func (v *validator) ifname(path, s string) {
	if s == "" || len(s) > MaxInterfaceNameLen || strings.ContainsAny(s, "/ \t\n:") || s == "." || s == ".." {
		v.add(path, "%q is not an interface name", s)
	}
}

func (v *validator) document(d *Document) {
	if d.APIVersion != APIVersion {
		if d.APIVersion == "" {
			v.add("apiVersion", "is required (%s)", APIVersion)
		} else {
			v.add("apiVersion", "%q is not supported (use %s)", d.APIVersion, APIVersion)
		}
	}
	if d.Kind != Kind {
		if d.Kind == "" {
			v.add("kind", "is required (%s)", Kind)
		} else {
			v.add("kind", "%q is not supported (use %s)", d.Kind, Kind)
		}
	}
	v.name("metadata.name", d.Metadata.Name)
	if len(d.Metadata.Labels) > MaxLabels {
		v.add("metadata.labels", "has %d labels; at most %d", len(d.Metadata.Labels), MaxLabels)
	}
	for k, val := range d.Metadata.Labels {
		if k == "" || len(k) > MaxLabelLen || len(val) > MaxLabelLen {
			v.add("metadata.labels."+k, "label keys must be 1-%d characters and values at most %d", MaxLabelLen, MaxLabelLen)
		}
	}
	pools := v.pools(d.Spec.Pools)
	v.dataplane(&d.Spec.Dataplane, pools)
	v.gateway(&d.Spec.Gateway, d.Spec.Pools, pools)
}

func (v *validator) dataplane(dp *Dataplane, pools map[string]int) {
	const p = "spec.dataplane"
	seenIf := uniq{}
	for i, n := range dp.Interfaces {
		v.ifname(idx(p+".interfaces", i), n)
		v.unique(seenIf, idx(p+".interfaces", i), n, "interface")
	}
	seenDecap := uniq{}
	for i, n := range dp.DecapInterfaces {
		v.ifname(idx(p+".decapInterfaces", i), n)
		v.unique(seenDecap, idx(p+".decapInterfaces", i), n, "interface")
	}
	v.enum(p+".xdpMode", dp.XDPMode, xdpModes, true)

	v.enum(p+".firewall.defaultAction", dp.Firewall.DefaultAction, fwActions, true)
	seen := uniq{}
	for i, r := range dp.Firewall.Rules {
		rp := idx(p+".firewall.rules", i)
		v.name(rp+".name", r.Name)
		v.unique(seen, rp+".name", r.Name, "rule")
		v.enum(rp+".action", r.Action, fwActions, false)
		v.enum(rp+".protocol", r.Protocol, ruleProtocols, true)
		if len(r.Sources) == 0 {
			v.add(rp+".sources", "needs at least one address or prefix")
		}
		for j, s := range r.Sources {
			v.source(idx(rp+".sources", j), s)
		}
		for j, port := range r.Ports {
			v.port(idx(rp+".ports", j), port, false)
		}
		if len(r.Ports) > 0 && r.Protocol == "icmp" {
			v.add(rp+".ports", "icmp has no ports")
		}
	}

	rl := dp.RateLimits
	if rl.AggregateV4 < 0 || rl.AggregateV4 > 32 {
		v.add(p+".rateLimits.aggregateV4", "%d is not an IPv4 prefix length (1-32)", rl.AggregateV4)
	}
	if rl.AggregateV6 < 0 || rl.AggregateV6 > 128 {
		v.add(p+".rateLimits.aggregateV6", "%d is not an IPv6 prefix length (1-128)", rl.AggregateV6)
	}
	seen = uniq{}
	if len(rl.Classes) > MaxClasses {
		v.add(p+".rateLimits.classes", "has %d classes; at most %d", len(rl.Classes), MaxClasses)
	}
	// A prefix belongs to one class: the kernel's longest-prefix match
	// could only keep one of them.
	classPrefixes := uniq{}
	for i, c := range rl.Classes {
		cp := idx(p+".rateLimits.classes", i)
		v.name(cp+".name", c.Name)
		v.unique(seen, cp+".name", c.Name, "class")
		if len(c.Sources) == 0 {
			v.add(cp+".sources", "needs at least one address or prefix")
		}
		for j, s := range c.Sources {
			sp := idx(cp+".sources", j)
			v.source(sp, s)
			if pfx, err := parseSource(s); err == nil {
				v.unique(classPrefixes, sp, pfx.String(), "class source")
			}
		}
		v.rate(cp+".packetsPerSecond", c.PacketsPerSecond)
		v.rate(cp+".newConnsPerSecond", c.NewConnsPerSecond)
		v.burst(cp+".packetBurst", c.PacketBurst, c.PacketsPerSecond, "packetsPerSecond")
		v.burst(cp+".newConnBurst", c.NewConnBurst, c.NewConnsPerSecond, "newConnsPerSecond")
	}

	seen = uniq{}
	services := uniq{}
	for i, vip := range dp.VIPs {
		vp := idx(p+".vips", i)
		v.name(vp+".name", vip.Name)
		v.unique(seen, vp+".name", vip.Name, "VIP")
		v.addr(vp+".address", vip.Address)
		v.port(vp+".port", vip.Port, false)
		v.enum(vp+".protocol", vip.Protocol, vipProtocols, true)
		v.enum(vp+".forwarding", vip.Forwarding, forwardings, true)
		v.ref(vp+".pool", vip.Pool, pools, "pool")
		v.rate(vp+".newConnsPerSecond", vip.NewConnsPerSecond)
		v.burst(vp+".newConnBurst", vip.NewConnBurst, vip.NewConnsPerSecond, "newConnsPerSecond")
		v.rate(vp+".newFlowBudget", vip.NewFlowBudget)
		v.rate(vp+".newFlowBudgetBurst", vip.NewFlowBudgetBurst) // alone it bursts over the default rate
		if a, err := parseAddr(vip.Address); err == nil {
			proto := vip.Protocol
			if proto == "" {
				proto = DefaultVIPProtocol
			}
			v.unique(services, vp, fmt.Sprintf("%s/%s", netip.AddrPortFrom(a, uint16(vip.Port)), proto), "VIP address/port/protocol")
		}
	}
	seen = uniq{}
	for i, s := range dp.LocalVIPs {
		lp := idx(p+".localVIPs", i)
		v.addr(lp, s)
		if a, err := parseAddr(s); err == nil {
			v.unique(seen, lp, a.String(), "local VIP")
		}
	}
	seen = uniq{}
	for i, s := range dp.DecapSources {
		sp := idx(p+".decapSources", i)
		v.source(sp, s)
		if pfx, err := parseSource(s); err == nil {
			v.unique(seen, sp, pfx.String(), "decapsulation source")
		}
	}
}

func (v *validator) ref(path, name string, known map[string]int, what string) {
	if name == "" {
		v.add(path, "is required")
		return
	}
	if _, ok := known[name]; !ok {
		v.add(path, "refers to %s %q, which is not declared", what, name)
	}
}

// pools validates the pools and returns their indices by name.
func (v *validator) pools(pools []Pool) map[string]int {
	byName := map[string]int{}
	seen := uniq{}
	for i, pool := range pools {
		pp := idx("spec.pools", i)
		v.name(pp+".name", pool.Name)
		v.unique(seen, pp+".name", pool.Name, "pool")
		if _, dup := byName[pool.Name]; !dup && pool.Name != "" {
			byName[pool.Name] = i
		}
		switch {
		case len(pool.Backends) == 0:
			v.add(pp+".backends", "a pool needs at least one backend")
		case len(pool.Backends) > MaxBackendsPerPool:
			v.add(pp+".backends", "has %d backends; at most %d", len(pool.Backends), MaxBackendsPerPool)
		}
		names, addrs := uniq{}, uniq{}
		var total uint64
		for j, b := range pool.Backends {
			bp := idx(pp+".backends", j)
			v.name(bp+".name", b.Name)
			v.unique(names, bp+".name", b.Name, "backend")
			v.addr(bp+".address", b.Address)
			if a, err := parseAddr(b.Address); err == nil {
				key := a.String()
				if b.Port != 0 {
					key = netip.AddrPortFrom(a, uint16(b.Port)).String()
				}
				v.unique(addrs, bp+".address", key, "backend address")
			}
			v.port(bp+".port", b.Port, true)
			if b.Weight > MaxWeight {
				v.add(bp+".weight", "%d is more than %d", b.Weight, MaxWeight)
			}
			v.enum(bp+".state", b.State, backendStates, true)
			if b.LoadReportURL != "" {
				v.httpURL(bp+".loadReportURL", b.LoadReportURL)
			}
			total += uint64(b.Weight)
		}
		if len(pool.Backends) > 0 && total == 0 {
			v.add(pp+".backends", "every backend has weight 0, so the pool can take no traffic")
		}
		if hc := pool.HealthCheck; hc != nil {
			hp := pp + ".healthCheck"
			v.enum(hp+".type", hc.Type, healthTypes, false)
			v.port(hp+".port", hc.Port, true)
			if hc.Path != "" {
				if hc.Type != "http" {
					v.add(hp+".path", "only http health checks have a path")
				} else if !strings.HasPrefix(hc.Path, "/") {
					v.add(hp+".path", "%q must start with /", hc.Path)
				}
			}
			v.duration(hp+".interval", hc.Interval, MinHealthInterval, MaxHealthInterval)
			v.duration(hp+".timeout", hc.Timeout, time.Millisecond, MaxHealthInterval)
			interval, timeout := hc.Interval.D(), hc.Timeout.D()
			if interval == 0 {
				interval = DefaultHealthInterval
			}
			if timeout == 0 {
				timeout = DefaultHealthTimeout
			}
			if timeout >= interval {
				v.add(hp+".timeout", "%s must be shorter than the interval %s", timeout, interval)
			}
			if hc.Rise < 0 || hc.Rise > MaxHealthRiseFall {
				v.add(hp+".rise", "%d is outside 1..%d", hc.Rise, MaxHealthRiseFall)
			}
			if hc.Fall < 0 || hc.Fall > MaxHealthRiseFall {
				v.add(hp+".fall", "%d is outside 1..%d", hc.Fall, MaxHealthRiseFall)
			}
		}
	}
	return byName
}

func (v *validator) limits(path string, l Limits) {
	if l.BudgetUSD < 0 || math.IsNaN(l.BudgetUSD) || math.IsInf(l.BudgetUSD, 0) {
		v.add(path+".budgetUSD", "%v must be a non-negative amount", l.BudgetUSD)
	}
	if l.BudgetWindow != 0 && l.BudgetWindow.D() < time.Minute {
		v.add(path+".budgetWindow", "%s is shorter than a minute", l.BudgetWindow.D())
	}
	if l.BudgetWindow != 0 && l.BudgetUSD == 0 {
		v.add(path+".budgetWindow", "a budget window needs budgetUSD")
	}
}

func (v *validator) timeouts(path string, t Timeouts) {
	v.duration(path+".connect", t.Connect, time.Millisecond, time.Hour)
	v.duration(path+".timeToFirstToken", t.TimeToFirstToken, time.Millisecond, 24*time.Hour)
	v.duration(path+".total", t.Total, time.Millisecond, 24*time.Hour)
	if t.TimeToFirstToken != 0 && t.Total != 0 && t.TimeToFirstToken > t.Total {
		v.add(path+".timeToFirstToken", "%s is longer than total %s", t.TimeToFirstToken.D(), t.Total.D())
	}
}

// HashPrefix is how API key hashes are written: "sha256:<64 hex digits>".
const HashPrefix = "sha256:"

// ParseKeyHash reads "sha256:<64 lowercase hex digits>".
func ParseKeyHash(s string) ([32]byte, error) {
	var h [32]byte
	hexPart, ok := strings.CutPrefix(s, HashPrefix)
	if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart {
		return h, fmt.Errorf("%q is not sha256:<64 lowercase hex digits>", truncate(s, 80))
	}
	if _, err := hex.Decode(h[:], []byte(hexPart)); err != nil {
		return h, fmt.Errorf("%q is not sha256:<64 lowercase hex digits>", truncate(s, 80))
	}
	return h, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (v *validator) gateway(g *Gateway, poolList []Pool, pools map[string]int) {
	const p = "spec.gateway"
	if g.Listen != "" {
		v.hostPort(p+".listen", g.Listen)
	}
	if g.MaxBodyBytes != 0 && (g.MaxBodyBytes < MinMaxBodyBytes || g.MaxBodyBytes > MaxMaxBodyBytes) {
		v.add(p+".maxBodyBytes", "%d is outside %d..%d", g.MaxBodyBytes, MinMaxBodyBytes, MaxMaxBodyBytes)
	}
	v.timeouts(p+".timeouts", g.Timeouts)

	tenants := map[string]int{}
	seen := uniq{}
	for i, t := range g.Tenants {
		tp := idx(p+".tenants", i)
		v.name(tp+".name", t.Name)
		v.unique(seen, tp+".name", t.Name, "tenant")
		tenants[t.Name] = i
		v.limits(tp+".limits", t.Limits)
	}
	seen, hashes := uniq{}, uniq{}
	for i, k := range g.Keys {
		kp := idx(p+".keys", i)
		v.name(kp+".name", k.Name)
		v.unique(seen, kp+".name", k.Name, "key")
		v.ref(kp+".tenant", k.Tenant, tenants, "tenant")
		if _, err := ParseKeyHash(k.Hash); err != nil {
			v.add(kp+".hash", "%v", err)
		} else {
			v.unique(hashes, kp+".hash", k.Hash, "key hash")
		}
		v.limits(kp+".limits", k.Limits)
	}
	seen = uniq{}
	for i, j := range g.JWT {
		jp := idx(p+".jwt", i)
		if j.Issuer == "" {
			v.add(jp+".issuer", "is required")
		}
		v.unique(seen, jp+".issuer", j.Issuer, "issuer")
		n := 0
		for _, s := range []string{j.HS256SecretFile, j.HS256SecretEnv, j.JWKSURL} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.add(jp, "needs exactly one of hs256SecretFile, hs256SecretEnv or jwksURL (has %d)", n)
		}
		if j.JWKSURL != "" {
			v.httpURL(jp+".jwksURL", j.JWKSURL)
		}
		if j.HS256SecretFile != "" && !filepath.IsAbs(j.HS256SecretFile) {
			v.add(jp+".hs256SecretFile", "%q must be an absolute path", j.HS256SecretFile)
		}
		if j.JWKSRefresh != 0 && j.JWKSURL == "" {
			v.add(jp+".jwksRefresh", "only applies with jwksURL")
		}
		v.duration(jp+".jwksRefresh", j.JWKSRefresh, 10*time.Second, 24*time.Hour)
	}

	providers := map[string]int{}
	seen = uniq{}
	for i, pr := range g.Providers {
		pp := idx(p+".providers", i)
		v.name(pp+".name", pr.Name)
		v.unique(seen, pp+".name", pr.Name, "provider")
		providers[pr.Name] = i
		if pr.BaseURL == "" {
			v.add(pp+".baseURL", "is required")
		} else {
			v.httpURL(pp+".baseURL", pr.BaseURL)
		}
		if pr.APIKeyFile != "" && pr.APIKeyEnv != "" {
			v.add(pp, "has both apiKeyFile and apiKeyEnv; use one")
		}
		if pr.APIKeyFile != "" && !filepath.IsAbs(pr.APIKeyFile) {
			v.add(pp+".apiKeyFile", "%q must be an absolute path", pr.APIKeyFile)
		}
	}

	modelNames := uniq{}
	routedPools := map[int]string{}
	for i, m := range g.Models {
		mp := idx(p+".models", i)
		if m.Name == "" {
			v.add(mp+".name", "is required")
		} else if len(m.Name) > 256 || strings.ContainsAny(m.Name, " \t\n") {
			v.add(mp+".name", "%q is not a model name", truncate(m.Name, 80))
		}
		v.unique(modelNames, mp+".name", m.Name, "model name")
		for j, a := range m.Aliases {
			v.unique(modelNames, idx(mp+".aliases", j), a, "model name")
		}
		v.enum(mp+".encoding", m.Encoding, encodings, true)
		for _, f := range []struct {
			name string
			val  float64
		}{{"inputPerMTok", m.Price.InputPerMTok}, {"outputPerMTok", m.Price.OutputPerMTok}} {
			if f.val < 0 || f.val > MaxPriceUSDPerMTok {
				v.add(mp+".price."+f.name, "%v is outside 0..%d USD per million tokens", f.val, MaxPriceUSDPerMTok)
			}
		}
		if len(m.Routes) == 0 {
			v.add(mp+".routes", "a model needs at least one route")
		}
		var total uint64
		for j, r := range m.Routes {
			v.route(idx(mp+".routes", j), r, pools, providers, routedPools)
			total += uint64(r.Weight)
		}
		if len(m.Routes) > 0 && total == 0 {
			v.add(mp+".routes", "every route has weight 0, so the model can take no traffic")
		}
		for j, r := range m.Fallback {
			v.route(idx(mp+".fallback", j), r, pools, providers, routedPools)
		}
		v.timeouts(mp+".timeouts", m.Timeouts)
		if m.Retries < 0 || m.Retries > MaxRetries {
			v.add(mp+".retries", "%d is outside 0..%d", m.Retries, MaxRetries)
		}
	}
	// L7 routes connect to backends directly, so their ports must be known.
	for pi := range poolList {
		at, routed := routedPools[pi]
		if !routed {
			continue
		}
		for j, b := range poolList[pi].Backends {
			if b.Port == 0 {
				v.add(idx(idx("spec.pools", pi)+".backends", j)+".port", "is required: model route %s sends requests to this pool", at)
			}
		}
	}

	insp := g.Inspection
	if insp.MaxMessageBytes < 0 {
		v.add(p+".inspection.maxMessageBytes", "%d must not be negative", insp.MaxMessageBytes)
	}
	seen = uniq{}
	for i, r := range insp.Rules {
		rp := idx(p+".inspection.rules", i)
		v.name(rp+".name", r.Name)
		v.unique(seen, rp+".name", r.Name, "rule")
		v.enum(rp+".detector", r.Detector, Detectors, false)
		v.enum(rp+".action", r.Action, inspectActions, false)
		switch r.Detector {
		case "regex":
			switch {
			case r.Pattern == "":
				v.add(rp+".pattern", "is required for the regex detector")
			case len(r.Pattern) > MaxPatternLen:
				v.add(rp+".pattern", "is longer than %d bytes", MaxPatternLen)
			default:
				if _, err := regexp.Compile(r.Pattern); err != nil {
					v.add(rp+".pattern", "%q is not a valid regular expression: %v", truncate(r.Pattern, 80), strings.TrimPrefix(err.Error(), "error parsing regexp: "))
				}
			}
		case "deny-list":
			if len(r.Words) == 0 {
				v.add(rp+".words", "is required for the deny-list detector")
			}
		}
		if r.Pattern != "" && r.Detector != "regex" {
			v.add(rp+".pattern", "only the regex detector takes a pattern")
		}
		if len(r.Words) > 0 && r.Detector != "deny-list" {
			v.add(rp+".words", "only the deny-list detector takes words")
		}
		if len(r.Words) > MaxDenyWords {
			v.add(rp+".words", "has %d words; at most %d", len(r.Words), MaxDenyWords)
		}
		for j, w := range r.Words {
			if strings.TrimSpace(w) == "" {
				v.add(idx(rp+".words", j), "is empty")
			}
		}
	}
	if g.Limits.Redis != "" {
		v.hostPort(p+".limitStore.redis", g.Limits.Redis)
	}
	if g.Audit.Path != "" && !filepath.IsAbs(g.Audit.Path) {
		v.add(p+".audit.path", "%q must be an absolute path", g.Audit.Path)
	}
}

func (v *validator) route(path string, r Route, pools, providers map[string]int, routedPools map[int]string) {
	switch {
	case r.Pool != "" && r.Provider != "":
		v.add(path, "has both pool and provider; a route targets exactly one")
	case r.Pool == "" && r.Provider == "":
		v.add(path, "needs a pool or a provider")
	case r.Pool != "":
		v.ref(path+".pool", r.Pool, pools, "pool")
		if i, ok := pools[r.Pool]; ok {
			if _, seen := routedPools[i]; !seen {
				routedPools[i] = path
			}
		}
	default:
		v.ref(path+".provider", r.Provider, providers, "provider")
	}
	if r.Weight > MaxWeight {
		v.add(path+".weight", "%d is more than %d", r.Weight, MaxWeight)
	}
}
