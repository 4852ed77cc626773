package policy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
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
	MaxMaxBodyBytes     = 64 << 20 // the gateway holds a whole body to count and inspect it
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
	v.dataplaneLimits(doc)
	return v.ps.err()
}

// dataplaneLimits runs DataplaneProblems, the checks the agent runs on the
// compiled form, once the dataplane and pools are otherwise valid: the
// compiled form of an invalid section would be guesswork.
func (v *validator) dataplaneLimits(doc *Document) {
	for _, p := range v.ps.list {
		if underAny(p.Path, []Problem{{Path: "spec.dataplane"}, {Path: "spec.pools"}}) {
			return
		}
	}
	for _, p := range DataplaneProblems(build(doc)) {
		v.add(p.Path, "%s", p.Message)
	}
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

// vipAddr checks an address the data plane answers for: one that packets
// from the network can be addressed to.
func (v *validator) vipAddr(path, s string) {
	v.addr(path, s)
	a, err := parseAddr(s)
	if err != nil || a.IsUnspecified() || a.IsMulticast() {
		return // reported by addr
	}
	switch {
	case a.IsLoopback():
		v.add(path, "%s is a loopback address; no packet from the network is addressed to it", s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		v.add(path, "%s is the broadcast address; every host on the segment receives it", s)
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

func (v *validator) ref(path, name string, known map[string]int, what string) {
	if name == "" {
		v.add(path, "is required")
		return
	}
	if _, ok := known[name]; !ok {
		v.add(path, "refers to %s %q, which is not declared", what, name)
	}
}
