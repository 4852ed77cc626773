// Package route maps a requested model name to the upstreams that serve it:
// aliases, weighted splits between routes (A/B tests, canaries), ordered
// fallback, and the choice of a backend within a pool (a GPU-load Picker
// when one is given, else power of two choices on in-flight requests).
package route

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/policy"
)

// maxProviderKeyBytes bounds a provider key read from a file.
const maxProviderKeyBytes = 4096

// Backend is one self-hosted inference server.
type Backend struct {
	Name     string
	Pool     string
	Addr     netip.AddrPort
	HostPort string // Addr as host:port, made once for dialing
	BaseURL  string // http://addr:port/v1, https:// for a pool with TLS
	// TLS: the pool is reached over HTTPS (net/http's transport with the
	// pool's CA), not through the gateway's plain connection pool.
	TLS bool
	// Label is "pool/name", as metrics and the audit log name the backend;
	// made once so no request builds it.
	Label    string
	Draining bool
	// Weight is the policy's static weight: the share of requests the
	// backend gets when loads are equal.
	Weight   uint32
	inflight *atomic.Int64
	// pending is the prompt tokens awaiting prefill (pending.go).
	pending *atomic.Int64
	// outlier is the backend's passive failure marking (outlier.go); nil
	// when the table has none.
	outlier  *outlier
	outliers *Outliers
	pool     *Pool
}

// InFlight is the number of requests this gateway has open to the backend.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// Acquire counts a request against the backend; call the returned func when
// it ends.
func (b *Backend) Acquire() func() {
	b.inflight.Add(1)
	return func() { b.inflight.Add(-1) }
}

// Pool is a set of backends.
type Pool struct {
	Name     string
	Backends []*Backend
}

// Provider is an external OpenAI-compatible API.
type Provider struct {
	Name    string
	BaseURL string // e.g. https://api.openai.com/v1
	// Label is "provider/name", as metrics and the audit log name it.
	Label string
	// GenAIName is the provider's gen_ai.provider.name (from its kind).
	GenAIName string
	// Prices is the provider's price table by upstream model.
	Prices map[string]*policy.ProviderModel
	key    string
	// secret is the key file, read again when it changes (nil: key is
	// from the environment, or there is none).
	secret *outbound.Secret
}

// Key is the credential the gateway sends to the provider.
// A key from a file is read again when the file changes (a rotated key
// is used without a restart); if it stops reading, the last good key is
// kept.
func (p *Provider) Key() string {
	if p.secret != nil {
		if k, err := p.secret.String(); err == nil {
			return k
		}
	}
	return p.key
}

// Picker chooses a backend of a pool by GPU load. It returns an index into
// backends, or -1 to leave the choice to power of two choices.
type Picker interface {
	Pick(pool string, backends []*Backend) int
}

// PrefixPicker is a Picker that also steers by the prompt (prefix
// affinity: requests sharing a system prompt or earlier turns go where
// that prefix's KV cache is). A Picker that implements it gets the
// prompt's text, in order and bounded by the caller, through PickPrefix
// instead of Pick; it must not keep prompt after returning.
type PrefixPicker interface {
	Picker
	PickPrefix(pool string, backends []*Backend, prompt []byte) int
}

// Route is one weighted or fallback target of a model.
type Route struct {
	Pool          *Pool
	Provider      *Provider
	Weight        uint32
	UpstreamModel string
}

// Label names the route's target for metrics and logs.
func (r *Route) Label() string {
	if r.Provider != nil {
		return "provider/" + r.Provider.Name
	}
	return "pool/" + r.Pool.Name
}

// Model is a model clients may ask for.
type Model struct {
	Policy      *policy.CompiledModel
	Name        string
	Routes      []Route
	Fallback    []Route
	totalWeight uint64
}

// Table is the routing state of one compiled policy. It is read-only after
// New and safe for concurrent use.
type Table struct {
	models map[string]*Model
	list   []*Model
	picker Picker
}

// Options for New.
type Options struct {
	// Picker is the optional GPU-load-aware backend choice.
	Picker Picker
	// InFlight shares in-flight counters across tables so a policy change
	// keeps counting requests still open on the old table. Nil: private.
	InFlight *InFlight
	// Outliers marks out backends whose attempts keep failing (outlier.go),
	// shared across tables like InFlight. Nil: no marking.
	Outliers *Outliers
	// Getenv and ReadFile read provider keys (defaults os.Getenv, os.ReadFile).
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

// InFlight holds one counter per backend address.
type InFlight struct{ m, pending sync.Map }

func (f *InFlight) counter(a netip.AddrPort) *atomic.Int64 {
	if v, ok := f.m.Load(a); ok {
		return v.(*atomic.Int64)
	}
	v, _ := f.m.LoadOrStore(a, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// New builds the table for c.
func New(c *policy.Compiled, opts Options) (*Table, error) {
	if opts.InFlight == nil {
		opts.InFlight = &InFlight{}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	pools := make([]*Pool, len(c.Pools))
	for i := range c.Pools {
		cp := &c.Pools[i]
		p := &Pool{Name: cp.Name}
		for _, b := range cp.Backends {
			if b.Port == 0 {
				return nil, fmt.Errorf("pool %s backend %s: no port for L7 routing", cp.Name, b.Name)
			}
			ap := netip.AddrPortFrom(b.Address, b.Port)
			hp := ap.String()
			p.Backends = append(p.Backends, &Backend{Name: b.Name, Pool: cp.Name, Addr: ap, HostPort: hp,
				BaseURL: scheme(cp) + hp + "/v1", TLS: cp.TLS != nil, Label: cp.Name + "/" + b.Name, Draining: b.Draining, Weight: b.Weight,
				inflight: opts.InFlight.counter(ap), pending: opts.InFlight.pendingCounter(ap), pool: p})
			if o := opts.Outliers; o != nil && !o.cfg.Disabled {
				b := p.Backends[len(p.Backends)-1]
				b.outlier, b.outliers = o.state(ap), o
			}
		}
		pools[i] = p
	}
	providers := make([]*Provider, len(c.Gateway.Providers))
	for i, pv := range c.Gateway.Providers {
		key, err := providerKey(pv, opts)
		if err != nil {
			return nil, err
		}
		var secret *outbound.Secret
		if pv.APIKeyFile != "" {
			secret = &outbound.Secret{ReadFile: opts.ReadFile}
			secret.SetFile(pv.APIKeyFile, key)
		}
		providers[i] = &Provider{Name: pv.Name, BaseURL: strings.TrimRight(pv.BaseURL, "/"), Label: "provider/" + pv.Name,
			GenAIName: policy.GenAIProviderName(pv.ProviderKind()), Prices: prices(pv.Models), key: key, secret: secret}
	}
	t := &Table{models: map[string]*Model{}, picker: opts.Picker}
	conv := func(rs []policy.CompiledRoute, model string) ([]Route, error) {
		out := make([]Route, 0, len(rs))
		for _, r := range rs {
			var rt Route
			switch {
			case r.Pool >= 0 && r.Pool < len(pools):
				rt.Pool = pools[r.Pool]
				if len(rt.Pool.Backends) == 0 {
					return nil, fmt.Errorf("model %s: pool %s has no backends", model, rt.Pool.Name)
				}
			case r.Provider >= 0 && r.Provider < len(providers):
				rt.Provider = providers[r.Provider]
			default:
				return nil, fmt.Errorf("model %s: route to neither a pool nor a provider", model)
			}
			rt.Weight, rt.UpstreamModel = r.Weight, r.UpstreamModel
			out = append(out, rt)
		}
		return out, nil
	}
	for i := range c.Gateway.Models {
		cm := &c.Gateway.Models[i]
		m := &Model{Policy: cm, Name: cm.Name}
		var err error
		if m.Routes, err = conv(cm.Routes, cm.Name); err != nil {
			return nil, err
		}
		if m.Fallback, err = conv(cm.Fallback, cm.Name); err != nil {
			return nil, err
		}
		if len(m.Routes) == 0 {
			return nil, fmt.Errorf("model %s: no routes", cm.Name)
		}
		for _, r := range m.Routes {
			m.totalWeight += uint64(r.Weight)
		}
		for _, name := range append([]string{cm.Name}, cm.Aliases...) {
			if _, dup := t.models[name]; dup {
				return nil, fmt.Errorf("model name %q used twice", name)
			}
			t.models[name] = m
		}
		t.list = append(t.list, m)
	}
	return t, nil
}

func providerKey(pv policy.Provider, opts Options) (string, error) {
	switch {
	case pv.APIKeyFile != "":
		b, err := opts.ReadFile(pv.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("provider %s: read key file: %w", pv.Name, err)
		}
		if len(b) > maxProviderKeyBytes {
			return "", fmt.Errorf("provider %s: key file longer than %d bytes", pv.Name, maxProviderKeyBytes)
		}
		return strings.TrimSpace(string(b)), nil
	case pv.APIKeyEnv != "":
		v := opts.Getenv(pv.APIKeyEnv)
		if v == "" {
			return "", fmt.Errorf("provider %s: environment variable %s is empty", pv.Name, pv.APIKeyEnv)
		}
		return v, nil
	}
	return "", nil
}

// Lookup finds a model by name or alias.
func (t *Table) Lookup(name string) (*Model, bool) {
	m, ok := t.models[name]
	return m, ok
}

// Models lists the models (not aliases) in policy order.
func (t *Table) Models() []*Model { return t.list }

// Plan returns the routes to try in order: one weighted pick among Routes,
// then the Fallback routes, at most 1+retries in all.
func (m *Model) Plan(dst []*Route, retries int) []*Route {
	dst = append(dst[:0], m.pick())
	for i := range m.Fallback {
		if len(dst) > retries {
			break
		}
		dst = append(dst, &m.Fallback[i])
	}
	return dst
}

func (m *Model) pick() *Route {
	if len(m.Routes) == 1 || m.totalWeight == 0 {
		if len(m.Routes) > 1 {
			return &m.Routes[rand.IntN(len(m.Routes))]
		}
		return &m.Routes[0]
	}
	n := rand.Uint64N(m.totalWeight)
	for i := range m.Routes {
		w := uint64(m.Routes[i].Weight)
		if n < w {
			return &m.Routes[i]
		}
		n -= w
	}
	return &m.Routes[len(m.Routes)-1]
}

// Backend picks a backend of the route's pool (nil for provider routes).
func (t *Table) Backend(r *Route) *Backend { return t.BackendPrompt(r, nil) }

// WantsPrompt reports whether the picker steers by prompt (PrefixPicker),
// so a caller assembles the prompt only when it is used.
func (t *Table) WantsPrompt() bool {
	_, ok := t.picker.(PrefixPicker)
	return ok
}

// BackendPrompt is Backend with the prompt's text for a PrefixPicker;
// other pickers ignore it.
func (t *Table) BackendPrompt(r *Route, prompt []byte) *Backend {
	if r.Pool == nil {
		return nil
	}
	bs := r.Pool.Backends
	if t.picker != nil {
		i := -1
		if pp, ok := t.picker.(PrefixPicker); ok {
			i = pp.PickPrefix(r.Pool.Name, bs, prompt)
		} else {
			i = t.picker.Pick(r.Pool.Name, bs)
		}
		if i >= 0 && i < len(bs) {
			return bs[i]
		}
	}
	return PowerOfTwo(bs)
}

// PowerOfTwo is weighted power of two choices: it draws two distinct
// backends with probability proportional to their policy weights and returns
// the one with fewer requests in flight per unit of weight. Draining,
// zero-weight and marked-out (outlier.go) backends are skipped while any
// other can serve; when none can,
// draining ones are still used (an all-draining pool is a policy change in
// progress, not a reason to fail the request).
func PowerOfTwo(bs []*Backend) *Backend {
	if len(bs) == 1 {
		return bs[0] // the only choice, eligible or not: no draws
	}
	var total uint64
	n := 0
	for _, b := range bs {
		if eligible(b) {
			total += uint64(b.Weight)
			n++
		}
	}
	if n == 0 {
		return unweightedPair(bs)
	}
	a := weightedNth(bs, rand.Uint64N(total), nil)
	if a == nil {
		// Every backend was marked out since the count above.
		return unweightedPair(bs)
	}
	rest := total - min(uint64(a.Weight), total)
	if n == 1 || rest == 0 {
		return a
	}
	b := weightedNth(bs, rand.Uint64N(rest), a)
	if b == nil {
		return a
	}
	// Compare inflight/weight without division.
	if b.InFlight()*int64(a.Weight) < a.InFlight()*int64(b.Weight) {
		return b
	}
	return a
}

func eligible(b *Backend) bool { return !b.Draining && b.Weight > 0 && !b.Ejected() }

// weightedNth returns the eligible backend that point r falls into on the
// line of cumulative weights, leaving out skip.
func weightedNth(bs []*Backend, r uint64, skip *Backend) *Backend {
	var last *Backend
	for _, b := range bs {
		if b == skip || !eligible(b) {
			continue
		}
		if r < uint64(b.Weight) {
			return b
		}
		r -= uint64(b.Weight)
		last = b
	}
	return last
}

// unweightedPair is plain power of two choices over every backend, for a
// pool with nothing eligible.
func unweightedPair(bs []*Backend) *Backend {
	switch len(bs) {
	case 0: // refused by policy validation; no panic if it ever gets here
		return nil
	case 1:
		return bs[0]
	}
	i := rand.IntN(len(bs))
	j := rand.IntN(len(bs) - 1)
	if j >= i {
		j++
	}
	if bs[j].InFlight() < bs[i].InFlight() {
		return bs[j]
	}
	return bs[i]
}

// String is for debugging.
func (b *Backend) String() string {
	return b.Pool + "/" + b.Name + "@" + b.Addr.String() + " inflight=" + strconv.FormatInt(b.InFlight(), 10)
}

// scheme is how a pool's backends are reached.
func scheme(p *policy.CompiledPool) string {
	if p.TLS != nil {
		return "https://"
	}
	return "http://"
}

// prices indexes a provider's price table (nil when it has none).
func prices(ms []policy.ProviderModel) map[string]*policy.ProviderModel {
	if len(ms) == 0 {
		return nil
	}
	out := make(map[string]*policy.ProviderModel, len(ms))
	for i := range ms {
		out[ms[i].Name] = &ms[i]
	}
	return out
}

// Price is the provider's price for the upstream model (or, with no
// upstream model, the gateway's model name); nil when it has none.
func (p *Provider) Price(upstreamModel, model string) *policy.ProviderModel {
	if p.Prices == nil {
		return nil
	}
	if upstreamModel == "" {
		upstreamModel = model
	}
	return p.Prices[upstreamModel]
}

// Saturated reports whether every backend that can take new requests has
// at least n in flight from this gateway (the spill-over signal): the
// pool's own queue would hold a new request, where a fallback provider
// can answer it now.
func (p *Pool) Saturated(n int64) bool {
	some := false
	for _, b := range p.Backends {
		if !eligible(b) {
			continue
		}
		some = true
		if b.InFlight() < n {
			return false
		}
	}
	return some
}
