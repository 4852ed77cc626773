package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/maglev"
	"github.com/infergate/infergate/test/gpumodel"
)

// The baselines infergate's picker is judged against, each written from
// its published description (the source is named at each type).

// OperatorWeight is the static weight an operator writes for a GPU type:
// capacity by rule of thumb, 100 for an H100 and 5 for an A10 on an 8B
// model (the A10's KV cache holds a few dozen sequences; the figure an
// operator of this fleet would put in the policy), 100 for any other.
func OperatorWeight(s Spec) uint32 {
	if s.Name == A10.Name {
		return 5
	}
	return 100
}

// StaticMaglev is what an operator gets without load reports: an L4
// Maglev table (Eisenbud et al., NSDI 2016; infergate's maglev package)
// weighted by OperatorWeight, connections sticky. The health check takes
// failed backends out (the agent rebuilds the table).
type StaticMaglev struct {
	weights []uint32
	health  []bool
	table   []uint32
	size    uint64
}

// NewStaticMaglev returns the static policy for specs.
func NewStaticMaglev(specs []Spec) *StaticMaglev {
	p := &StaticMaglev{size: maglev.SizeFor(len(specs))}
	for _, s := range specs {
		p.weights = append(p.weights, OperatorWeight(s))
	}
	return p
}

func (*StaticMaglev) Name() string                    { return "static-maglev" }
func (*StaticMaglev) PerRequest() bool                { return false }
func (*StaticMaglev) Report(*View, int, score.Report) {}
func (p *StaticMaglev) Tick(v *View) {
	if p.table != nil && !healthChanged(p.health, v) {
		return
	}
	p.health = healthOf(v)
	bs := make([]maglev.Backend, len(v.Backends))
	for i, n := range v.Backends {
		w := p.weights[i]
		if !v.healthy(i) {
			w = 0
		}
		bs[i] = maglev.Backend{ID: uint32(i), Weight: w, Key: n}
	}
	if t, err := maglev.Build(bs, p.size); err == nil {
		p.table = t
	}
}
func (p *StaticMaglev) Pick(v *View, c *Conn, _ *Request) int {
	if p.table == nil {
		p.Tick(v)
	}
	return int(p.table[c.Hash%p.size])
}

// StaticWRR is the same operator weights per request at L7: smooth
// weighted round robin (nginx's upstream "weight", ngx_http_upstream_round_robin.c
// as documented for nginx 1.x), healthy backends only.
type StaticWRR struct {
	weights []int
	current []int
}

// NewStaticWRR returns the per-request static policy for specs.
func NewStaticWRR(specs []Spec) *StaticWRR {
	p := &StaticWRR{current: make([]int, len(specs))}
	for _, s := range specs {
		p.weights = append(p.weights, int(OperatorWeight(s)))
	}
	return p
}

func (*StaticWRR) Name() string                    { return "static-wrr" }
func (*StaticWRR) PerRequest() bool                { return true }
func (*StaticWRR) Report(*View, int, score.Report) {}
func (*StaticWRR) Tick(*View)                      {}
func (p *StaticWRR) Pick(v *View, _ *Conn, _ *Request) int {
	best, total := -1, 0
	for i, w := range p.weights {
		if !v.healthy(i) {
			continue
		}
		p.current[i] += w
		total += w
		if best < 0 || p.current[i] > p.current[best] {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	p.current[best] -= total
	return best
}

// LeastQueue sends each request to the backend with the fewest requests
// the gateway has in flight there (join the shortest queue, full scan;
// HAProxy's "leastconn" per request, Envoy's LEAST_REQUEST without
// sampling), ties round robin.
type LeastQueue struct{ next int }

func (*LeastQueue) Name() string                    { return "least-queue" }
func (*LeastQueue) PerRequest() bool                { return true }
func (*LeastQueue) Report(*View, int, score.Report) {}
func (*LeastQueue) Tick(*View)                      {}
func (p *LeastQueue) Pick(v *View, _ *Conn, _ *Request) int {
	n := len(v.Backends)
	best := -1
	for k := range n {
		i := (p.next + k) % n
		if v.healthy(i) && (best < 0 || v.InFlight[i] < v.InFlight[best]) {
			best = i
		}
	}
	p.next++
	return max(best, 0)
}

// Metrics is what an endpoint picker scrapes from a model server: vLLM's
// num_requests_waiting, num_requests_running, kv_cache_usage_perc, and
// lora_requests_info (the adapters of running and waiting requests, and
// max_lora).
type Metrics struct {
	Waiting, Running int
	KVUsage          float64
	Adapters         []int
	MaxLoras         int
}

// Scraper is a policy that scrapes the model servers itself, every
// ScrapeInterval, instead of (or besides) the agent's load reports.
type Scraper interface {
	ScrapeInterval() float64
	Scrape(v *View, b int, m Metrics)
}

// EndpointPicker is the Gateway API Inference Extension's endpoint picker
// (EPP) with its default scorer set, as published for v1.0.0
// (kubernetes-sigs/gateway-api-inference-extension, v1.0.0: the
// EndpointPickerConfig default profile, queue-scorer weight 2,
// kv-cache-utilization-scorer weight 2, prefix-cache-scorer weight 3,
// max-score-picker; the EPP's refresh-metrics-interval default of 50 ms;
// the prefix plugin's 64-byte blocks and 31250 blocks of LRU per server).
// The lora-affinity-scorer (1 for a pod whose running or waiting adapters
// include the request's, 0.8 for one with room for another adapter, 0
// otherwise) is added at weight 1 when the workload names adapters: the
// v1.0.0 default profile does not list it, and without adapters it scores
// every pod alike.
//
// With Precise set it is llm-d's precise prefix-cache scorer instead
// (llm-d inference scheduler, guides/precise-prefix-cache-aware, llm-d
// v0.3: precise-prefix-cache-scorer weight 3, kv-cache-utilization-scorer
// weight 2, queue-scorer weight 2, max-score-picker): the prefix score is
// the fraction of the request's blocks each pod holds, read from an index
// fed by the engines' KV-cache events (Config.Shadow) instead of guessed
// from past routing.
type EndpointPicker struct {
	Precise *PreciseIndex
	lora    bool
	m       []Metrics
	approx  []*blockLRU
	rng     *rand.Rand
}

// NewEndpointPicker returns the EPP for n backends; lora adds the LoRA
// affinity scorer.
func NewEndpointPicker(n int, lora bool, precise *PreciseIndex, seed uint64) *EndpointPicker {
	p := &EndpointPicker{Precise: precise, lora: lora, m: make([]Metrics, n), rng: rand.New(rand.NewPCG(seed, 0xe99))}
	for range n {
		p.approx = append(p.approx, newBlockLRU(31250))
	}
	return p
}

func (p *EndpointPicker) Name() string {
	if p.Precise != nil {
		return "llmd-precise"
	}
	return "ie-epp"
}
func (*EndpointPicker) PerRequest() bool                { return true }
func (*EndpointPicker) Report(*View, int, score.Report) {}
func (*EndpointPicker) Tick(*View)                      {}
func (*EndpointPicker) ScrapeInterval() float64         { return 0.05 }
func (p *EndpointPicker) Scrape(_ *View, b int, m Metrics) {
	p.m[b] = m
}

func (p *EndpointPicker) Pick(v *View, _ *Conn, r *Request) int {
	n := len(v.Backends)
	minQ, maxQ := math.MaxInt, -1
	for i := range n {
		if v.healthy(i) {
			minQ, maxQ = min(minQ, p.m[i].Waiting), max(maxQ, p.m[i].Waiting)
		}
	}
	hashes := v.PrefixBlock(r)
	var matched []int
	if p.Precise != nil {
		matched = p.Precise.Match(r, n)
	}
	best, bestScore, ties := -1, math.Inf(-1), 0
	for i := range n {
		if !v.healthy(i) {
			continue
		}
		m := p.m[i]
		queue := 1.0
		if maxQ > minQ {
			queue = float64(maxQ-m.Waiting) / float64(maxQ-minQ)
		}
		kv := 1 - m.KVUsage
		prefix := 0.0
		if len(hashes) > 0 {
			if p.Precise != nil {
				prefix = float64(matched[i]) / float64(len(hashes))
			} else {
				prefix = float64(p.approx[i].match(hashes)) / float64(len(hashes))
			}
		}
		s := 2*queue + 2*kv + 3*prefix
		if p.lora && r.Adapter != 0 {
			switch {
			case containsInt(m.Adapters, r.Adapter):
				s += 1
			case len(m.Adapters) < m.MaxLoras:
				s += 0.8
			}
		}
		switch {
		case s > bestScore:
			best, bestScore, ties = i, s, 1
		case s == bestScore:
			// max-score-picker: a random one among the best.
			ties++
			if p.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	if best < 0 {
		return 0
	}
	if p.Precise == nil {
		p.approx[best].add(hashes)
	}
	return best
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// blockLRU is the prefix plugin's per-server record of block hashes it
// routed there, least recently used out past its capacity.
type blockLRU struct {
	cap   int
	tick  uint64
	seen  map[uint64]uint64 // hash -> last use
	order []uint64          // ring of hashes in insertion order, for eviction
	head  int
}

func newBlockLRU(capacity int) *blockLRU {
	return &blockLRU{cap: capacity, seen: make(map[uint64]uint64, capacity)}
}

// match is how many leading blocks of hashes the server was sent.
func (l *blockLRU) match(hashes []uint64) int {
	for i, h := range hashes {
		if _, ok := l.seen[h]; !ok {
			return i
		}
	}
	return len(hashes)
}

// add records hashes; past capacity the oldest insertions go (an
// approximation of LRU that the scores cannot tell apart at these sizes).
func (l *blockLRU) add(hashes []uint64) {
	for _, h := range hashes {
		l.tick++
		if _, ok := l.seen[h]; ok {
			l.seen[h] = l.tick
			continue
		}
		l.seen[h] = l.tick
		if len(l.order) < l.cap {
			l.order = append(l.order, h)
			continue
		}
		delete(l.seen, l.order[l.head])
		l.order[l.head] = h
		l.head = (l.head + 1) % l.cap
	}
}

// PreciseIndex is an event-fed prefix index: which backend holds which KV
// blocks, from the engines' BlockStored and BlockRemoved events
// (Config.Shadow), as llm-d's kv-cache indexer keeps it from vLLM's
// ZeroMQ events. Up to 64 backends.
type PreciseIndex struct {
	held map[BlockKey]uint64 // bit b: backend b holds the block
}

// NewPreciseIndex returns an empty index.
func NewPreciseIndex() *PreciseIndex { return &PreciseIndex{held: map[BlockKey]uint64{}} }

func (x *PreciseIndex) Stored(b int, k BlockKey) { x.held[k] |= 1 << uint(b) }
func (x *PreciseIndex) Removed(b int, k BlockKey) {
	if m := x.held[k] &^ (1 << uint(b)); m != 0 {
		x.held[k] = m
	} else {
		delete(x.held, k)
	}
}

// Match returns, for each of n backends, how many leading full blocks of
// r's prompt it holds.
func (x *PreciseIndex) Match(r *Request, n int) []int {
	out := make([]int, n)
	alive := uint64(1)<<uint(n) - 1
	blocks := r.Prompt / BlockTokens
	for i := 0; i < blocks && alive != 0; i++ {
		have := x.held[gpumodel.KeyOf(r, i)]
		for b := range n {
			if alive&(1<<uint(b)) != 0 && have&(1<<uint(b)) == 0 {
				out[b] = i
				alive &^= 1 << uint(b)
			}
		}
	}
	for b := range n {
		if alive&(1<<uint(b)) != 0 {
			out[b] = blocks
		}
	}
	return out
}

var _ KVListener = (*PreciseIndex)(nil)

// checkBackends rejects a fleet the index cannot hold.
func (x *PreciseIndex) checkBackends(n int) error {
	if n > 64 {
		return fmt.Errorf("sim: precise index holds 64 backends, not %d", n)
	}
	return nil
}
