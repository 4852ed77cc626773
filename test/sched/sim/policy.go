package sim

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/pick"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/maglev"
	"github.com/infergate/infergate/policy"
)

// View is what a balancer may know: its own bookkeeping (open connections
// and in-flight requests it forwarded) and the load reports the agent has
// received. It never sees engine internals.
type View struct {
	Now         float64
	Backends    []string
	OpenConns   []int
	InFlight    []int
	PrefixBlock func(r *Request) []uint64
	// Healthy is the balancer's health check: false from HealthDelay
	// after a GPU fails until HealthDelay after it returns. Every policy
	// leaves unhealthy backends out.
	Healthy []bool
}

// healthy reports whether backend i passes the health check (a View
// without health state has every backend healthy).
func (v *View) healthy(i int) bool { return v.Healthy == nil || v.Healthy[i] }

// Policy places traffic. L4 policies place connections (every request of a
// connection follows it); L7 policies place each request.
type Policy interface {
	Name() string
	PerRequest() bool
	// Pick returns a backend for a new connection c (L4) or for request r
	// (L7; c is r.Conn).
	Pick(v *View, c *Conn, r *Request) int
	// Report delivers a load report to the balancer's agent.
	Report(v *View, backend int, rep score.Report)
	// Tick runs once per report interval.
	Tick(v *View)
}

// RoundRobin places connections in turn.
type RoundRobin struct{ next int }

func (*RoundRobin) Name() string                    { return "round-robin" }
func (*RoundRobin) PerRequest() bool                { return false }
func (*RoundRobin) Report(*View, int, score.Report) {}
func (*RoundRobin) Tick(*View)                      {}
func (p *RoundRobin) Pick(v *View, _ *Conn, _ *Request) int {
	for range len(v.Backends) {
		b := p.next % len(v.Backends)
		p.next++
		if v.healthy(b) {
			return b
		}
	}
	return 0
}

// LeastConn places a connection on the backend with the fewest open
// connections (IPVS "lc"); ties go round robin.
type LeastConn struct{ next int }

func (*LeastConn) Name() string                    { return "least-conn" }
func (*LeastConn) PerRequest() bool                { return false }
func (*LeastConn) Report(*View, int, score.Report) {}
func (*LeastConn) Tick(*View)                      {}
func (p *LeastConn) Pick(v *View, _ *Conn, _ *Request) int {
	n := len(v.Backends)
	best := -1
	for k := 0; k < n; k++ {
		i := (p.next + k) % n
		if v.healthy(i) && (best < 0 || v.OpenConns[i] < v.OpenConns[best]) {
			best = i
		}
	}
	p.next++
	return max(best, 0)
}

// LeastWork is an idealised per-request router for controls: it sends
// each request to the backend with the least in-flight work for its
// speed, (InFlight+1)/Capacity, knowing every backend's true capacity
// (join the shortest queue, weighted), with no prefix affinity. Ties go
// round robin.
type LeastWork struct {
	// Capacity is each backend's saturated request rate (Capacity).
	Capacity []float64
	next     int
}

func (*LeastWork) Name() string                    { return "least-work" }
func (*LeastWork) PerRequest() bool                { return true }
func (*LeastWork) Report(*View, int, score.Report) {}
func (*LeastWork) Tick(*View)                      {}
func (p *LeastWork) Pick(v *View, _ *Conn, _ *Request) int {
	n := len(v.Backends)
	best, bestCost := -1, 0.0
	for k := 0; k < n; k++ {
		i := (p.next + k) % n
		if !(p.Capacity[i] > 0) || !v.healthy(i) {
			continue
		}
		if c := float64(v.InFlight[i]+1) / p.Capacity[i]; best < 0 || c < bestCost {
			best, bestCost = i, c
		}
	}
	p.next++
	return max(best, 0)
}

// GPU is the GPU-load policy at L4: the agent feeds load reports to the real
// score.Weighter, and when Weighter.Next says the weights moved past its
// threshold the real Maglev builder makes a new table; new connections
// hash into the table, established ones stay put.
type GPU struct {
	weighter *score.Weighter
	table    []uint32
	size     uint64
	health   []bool // as of the last build
	// Rebuilds counts table rebuilds.
	Rebuilds int
}

// newWeighter returns a weighter in which, before any report, every host
// has the operator's static weight (the policy default, 100), as in a real
// deployment.
func newWeighter(names []string, cfg score.Config) (*score.Weighter, error) {
	w, err := score.NewWeighter(cfg)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if err := w.SetNeutral(n, score.DefaultBaseWeight); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// NewGPU returns the gpu policy for the named backends; cfg's zero fields
// take the scorer's defaults.
func NewGPU(names []string, cfg score.Config) (*GPU, error) {
	w, err := newWeighter(names, cfg)
	if err != nil {
		return nil, err
	}
	g := &GPU{weighter: w, size: maglev.SizeFor(len(names))}
	if err := g.rebuild(names); err != nil {
		return nil, err
	}
	return g, nil
}

func (*GPU) Name() string     { return "gpu" }
func (*GPU) PerRequest() bool { return false }

func (g *GPU) rebuild(names []string) error {
	ws, _ := g.weighter.Next()
	bs := make([]maglev.Backend, len(names))
	for i, n := range names {
		bs[i] = maglev.Backend{ID: uint32(i), Weight: ws[n].Weight, Key: n}
	}
	t, err := maglev.Build(bs, g.size)
	if err != nil {
		return fmt.Errorf("gpu policy: %w", err)
	}
	g.table = t
	g.Rebuilds++
	return nil
}

func (g *GPU) Pick(_ *View, c *Conn, _ *Request) int {
	return int(g.table[c.Hash%g.size])
}

// healthOf copies v's health state.
func healthOf(v *View) []bool {
	out := make([]bool, len(v.Backends))
	for i := range out {
		out[i] = v.healthy(i)
	}
	return out
}

// healthChanged reports whether v's health differs from was.
func healthChanged(was []bool, v *View) bool {
	if was == nil {
		return v.Healthy != nil
	}
	for i, h := range was {
		if h != v.healthy(i) {
			return true
		}
	}
	return false
}

func (g *GPU) Report(v *View, b int, rep score.Report) {
	// Errors mean a stale report, which the weighter already ignores.
	_ = g.weighter.Observe(v.Backends[b], rep, simTime(v.Now))
}

func (g *GPU) Tick(v *View) {
	g.weighter.Tick(simTime(v.Now))
	ws, changed := g.weighter.Next()
	if !changed && !healthChanged(g.health, v) {
		return
	}
	g.health = healthOf(v)
	bs := make([]maglev.Backend, len(v.Backends))
	for i, n := range v.Backends {
		w := ws[n].Weight
		if !v.healthy(i) {
			w = 0 // the agent takes a backend that fails its check out
		}
		bs[i] = maglev.Backend{ID: uint32(i), Weight: w, Key: n}
	}
	if t, err := maglev.Build(bs, g.size); err == nil {
		// With every host drained Build fails; keep the old table, as
		// the agent does.
		g.table = t
		g.Rebuilds++
	}
}

// GPUPrefix is the L7 router: per request, the production picker
// (l7/pick) over a real route table's backends, with the weighter's
// current (unhysteresised) weights and the router's own in-flight counts
// as loads.
type GPUPrefix struct {
	// Blind hashes only the request's own identity instead of its prompt:
	// the same per-request L7 routing and load bound without prefix
	// affinity, to separate the two effects (policy "gpu-l7").
	Blind bool
	// Precise, when set, gives the picker the cached prefix lengths from
	// an event-fed index (Config.Shadow) instead of its own guess
	// (pick.Picker.PickMatched; policy "infergate-kv").
	Precise  *PreciseIndex
	labels   []string
	weighter *score.Weighter
	picker   *pick.Picker
	backends []*route.Backend
	// held mirrors View.InFlight onto the route backends' in-flight
	// counters: one release func per request the picker should see open.
	held [][]func()
	// now is the simulated time of the current event: the clock of the
	// picker and of the route table's outlier marking.
	now float64
	// pending are the requests whose prompt tokens count against their
	// backend (route.Backend.AddPending) until their first token or end,
	// as the gateway counts them: the part the picker did not know cached.
	pending map[*Request]pend
}

// pend is one request's pending prompt tokens on a backend.
type pend struct{ backend, tokens int }

// simPool names the simulated pool; the weighter's names are
// simPool/backend, as the report poller names targets.
const simPool = "sim"

// NewGPUPrefix returns the gpu-prefix policy; cfg as for NewGPU.
func NewGPUPrefix(names []string, cfg score.Config) (*GPUPrefix, error) {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = simPool + "/" + n
	}
	w, err := newWeighter(keys, cfg)
	if err != nil {
		return nil, err
	}
	// Simulated time: every pick reads the weighter afresh.
	g := &GPUPrefix{weighter: w, held: make([][]func(), len(names)), labels: keys, pending: map[*Request]pend{}}
	pk, err := pick.New(pick.Config{Weights: w.Current, WeightsTTL: -1, Now: func() time.Time { return simTime(g.now) }})
	if err != nil {
		return nil, err
	}
	g.picker = pk
	// The gateway's passive failure marking at its defaults, on
	// simulated time.
	ol, err := route.NewOutliers(route.OutlierConfig{Now: func() time.Time { return simTime(g.now) }})
	if err != nil {
		return nil, err
	}
	if g.backends, err = routeBackends(names, ol); err != nil {
		return nil, err
	}
	return g, nil
}

// routeBackends builds a route table with one pool of the named backends
// (each at the policy's default static weight) and returns its backends.
func routeBackends(names []string, ol *route.Outliers) ([]*route.Backend, error) {
	c := &policy.Compiled{}
	p := policy.CompiledPool{Name: simPool, LoadReports: true}
	for i, n := range names {
		p.Backends = append(p.Backends, policy.CompiledBackend{Name: n, Address: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
			Port: 8000, Weight: score.DefaultBaseWeight})
	}
	c.Pools = []policy.CompiledPool{p}
	c.Gateway.Models = []policy.CompiledModel{{Name: "m", Routes: []policy.CompiledRoute{{Pool: 0, Provider: -1, Weight: 1}}}}
	tb, err := route.New(c, route.Options{Outliers: ol})
	if err != nil {
		return nil, fmt.Errorf("gpu-prefix policy: %w", err)
	}
	m, _ := tb.Lookup("m")
	return m.Routes[0].Pool.Backends, nil
}

func (g *GPUPrefix) Name() string {
	if g.Blind {
		return "gpu-l7"
	}
	if g.Precise != nil {
		return "infergate-kv"
	}
	return "gpu-prefix"
}
func (*GPUPrefix) PerRequest() bool { return true }

func (g *GPUPrefix) Report(v *View, b int, rep score.Report) {
	_ = g.weighter.Observe(simPool+"/"+v.Backends[b], rep, simTime(v.Now))
}

func (g *GPUPrefix) Tick(v *View) { g.weighter.Tick(simTime(v.Now)) }

// Attempt reports an attempt's outcome to the route table's outlier
// marking and ends its pending prompt tokens, as the gateway's exchange
// does.
func (g *GPUPrefix) Attempt(v *View, r *Request, b int, o route.Outcome) {
	g.now = v.Now
	g.backends[b].Observe(o)
	g.unpend(r)
}

// unpend takes r's prompt tokens back from its backend.
func (g *GPUPrefix) unpend(r *Request) {
	if pd, ok := g.pending[r]; ok {
		g.backends[pd.backend].AddPending(-int64(pd.tokens))
		delete(g.pending, r)
	}
}

func (g *GPUPrefix) Pick(v *View, _ *Conn, r *Request) int {
	g.now = v.Now
	for i, b := range g.backends {
		for len(g.held[i]) < v.InFlight[i] {
			g.held[i] = append(g.held[i], b.Acquire())
		}
		for len(g.held[i]) > v.InFlight[i] {
			n := len(g.held[i]) - 1
			g.held[i][n]()
			g.held[i] = g.held[i][:n]
		}
	}
	for pr := range g.pending {
		// The gateway saw its first token: prefill is over.
		if pr.FirstToken >= 0 {
			g.unpend(pr)
		}
	}
	i, matched := g.pick(v, r)
	// The gateway leaves out the part of the prompt the picker knows the
	// backend holds (route.HitPicker).
	n := max(r.Prompt-matched*BlockTokens, 0)
	g.backends[i].AddPending(int64(n))
	g.pending[r] = pend{backend: i, tokens: n}
	return i
}

// pick returns the backend for r and the blocks of r's prompt the picker
// knows it holds.
func (g *GPUPrefix) pick(v *View, r *Request) (int, int) {
	var hashes []uint64
	if g.Blind {
		hashes = []uint64{affinity.Chain(0, []byte("r"+strconv.Itoa(r.ID)))}
	} else {
		hashes = v.PrefixBlock(r)
	}
	hit := func(bs []*route.Backend) (int, int) { return g.picker.PickBlocksHit(simPool, bs, hashes) }
	if g.Blind {
		// The request's own identity hashed: no prefix is held.
		hit = func(bs []*route.Backend) (int, int) { return g.picker.PickBlocks(simPool, bs, hashes), 0 }
	}
	if g.Precise != nil && !g.Blind {
		m := g.Precise.Match(r, len(g.backends))
		matched := func(label string) int {
			for i, l := range g.labels {
				if l == label {
					return m[i]
				}
			}
			return 0
		}
		hit = func(bs []*route.Backend) (int, int) { return g.picker.PickMatchedHit(simPool, bs, hashes, matched) }
	}
	if r.Adapter != 0 {
		// The gateway asks the upstream for the adapter by its name
		// (route.Table.BackendModel); the picker narrows the backends
		// by the adapters the reports name.
		inner, name := hit, AdapterName(r.Adapter)
		hit = func(bs []*route.Backend) (int, int) {
			held := 0
			i := g.picker.PickAdapter(simPool, name, bs, func(sub []*route.Backend) int {
				j, m := inner(sub)
				held = m
				return j
			})
			return i, held
		}
	}
	return pickHealthyHit(v, g.backends, hit)
}

// epoch anchors simulated seconds on the wall clock the weighter expects.
var epoch = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// simTime maps simulated seconds onto a wall-clock time for the weighter.
func simTime(t float64) time.Time { return epoch.Add(time.Duration(t * float64(time.Second))) }

// prefixBlocks returns the chained block hashes the router would compute
// for r's prompt (the router hashes 64-byte blocks, about BlockTokens
// tokens): blocks of the shared prefix hash the same for every
// request that uses it, and the user part is unique to the request.
func prefixBlocks(r *Request) []uint64 {
	n := r.Prompt / BlockTokens
	out := make([]uint64, 0, n)
	var prev uint64
	for i := 0; i < n; i++ {
		var content string
		if (i+1)*BlockTokens <= r.PrefixLen {
			content = "p" + strconv.Itoa(r.Prefix) + "/" + strconv.Itoa(i)
		} else {
			content = "r" + strconv.Itoa(r.ID) + "/" + strconv.Itoa(i)
		}
		prev = affinity.Chain(prev, []byte(content))
		out = append(out, prev)
	}
	return out
}

// pickHealthyHit is pickHealthy for a pick that also returns the blocks
// the chosen backend holds (0 when it falls back to the first healthy).
func pickHealthyHit(v *View, all []*route.Backend, pick func([]*route.Backend) (int, int)) (int, int) {
	matched := 0
	i := pickHealthy(v, all, func(bs []*route.Backend) int {
		j, m := pick(bs)
		if j >= 0 {
			matched = m
		}
		return j
	})
	return i, matched
}

// pickHealthy runs pick over the healthy backends (the gateway's health
// check leaves the others out of the candidates) and maps its answer back
// to an index of all; 0 if it finds none.
func pickHealthy(v *View, all []*route.Backend, pick func([]*route.Backend) int) int {
	var stack [16]*route.Backend
	bs, idx := stack[:0], make([]int, 0, len(all))
	for i, b := range all {
		if v.healthy(i) {
			bs = append(bs, b)
			idx = append(idx, i)
		}
	}
	if len(bs) == 0 {
		return 0
	}
	if i := pick(bs); i >= 0 {
		return idx[i]
	}
	return idx[0]
}
