package cache

import (
	"container/list"
	"math"
	"sync"
	"time"

	"github.com/coder/hnsw"
)

// Defaults of the semantic index.
const (
	DefaultSemanticEntries   = 10000
	DefaultSemanticThreshold = 0.95
	// semanticCandidates is how many neighbours a lookup examines: the
	// nearest may belong to another conversation (another context key).
	semanticCandidates = 8
	// maxEmbeddingDims bounds a vector taken from the embeddings upstream.
	maxEmbeddingDims = 8192
)

// Index is the semantic cache's approximate nearest-neighbour index: one
// HNSW graph per scope and model, each vector pointing at the exact key of
// the answer it was stored with. It holds at most max vectors (the oldest
// evicted first) and a vector older than the TTL is never matched.
type Index struct {
	mu     sync.Mutex
	max    int
	ttl    time.Duration
	now    func() time.Time
	graphs map[string]*hnsw.Graph[uint64]
	nodes  map[uint64]*list.Element
	order  list.List // front: newest
	nextID uint64
}

type semNode struct {
	id      uint64
	graph   string
	vec     []float32
	context Key
	exact   Key
	expires time.Time
}

// NewIndex returns an index of at most max vectors (DefaultSemanticEntries
// when 0), each matched for ttl.
func NewIndex(max int, ttl time.Duration, now func() time.Time) *Index {
	if max <= 0 {
		max = DefaultSemanticEntries
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Index{max: max, ttl: ttl, now: now, graphs: map[string]*hnsw.Graph[uint64]{}, nodes: map[uint64]*list.Element{}}
}

func graphName(scope, model string) string { return scope + "\x00" + model }

// unitVector scales v to unit length (cosine similarity is then a dot
// product); false for a zero, non-finite or oversized vector.
func unitVector(v []float32) ([]float32, bool) {
	if len(v) == 0 || len(v) > maxEmbeddingDims {
		return nil, false
	}
	var sum float64
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, false
		}
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return nil, false
	}
	n := float32(1 / math.Sqrt(sum))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x * n
	}
	return out, true
}

func cosine(a, b []float32) float32 {
	var dot float32
	for i := range a {
		dot += a[i] * b[i]
	}
	return dot
}

// Add indexes vec under scope and model, pointing at the exact key, for
// requests whose context key is ctx.
func (ix *Index) Add(scope, model string, vec []float32, ctx, exact Key) bool {
	v, ok := unitVector(vec)
	if !ok {
		return false
	}
	name := graphName(scope, model)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	g := ix.graphs[name]
	if g != nil && g.Len() > 0 && g.Dims() != len(v) {
		return false // the embeddings model changed: keep the old until evicted
	}
	for len(ix.nodes) >= ix.max {
		ix.remove(ix.order.Back())
	}
	if g = ix.graphs[name]; g == nil {
		g = newGraph()
		ix.graphs[name] = g
	}
	ix.nextID++
	n := &semNode{id: ix.nextID, graph: name, vec: v, context: ctx, exact: exact, expires: ix.now().Add(ix.ttl)}
	ix.nodes[n.id] = ix.order.PushFront(n)
	ix.safely(name, func(g *hnsw.Graph[uint64]) {
		if _, ok := g.Lookup(n.id); !ok { // a rebuilt graph has it already
			g.Add(hnsw.MakeNode(n.id, v))
		}
	})
	return true
}

// Search returns the exact key of the closest live vector of scope and
// model with context ctx whose cosine similarity to vec is at least
// threshold, and that similarity.
func (ix *Index) Search(scope, model string, vec []float32, ctx Key, threshold float32) (Key, float32, bool) {
	v, ok := unitVector(vec)
	if !ok {
		return Key{}, 0, false
	}
	name := graphName(scope, model)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	g := ix.graphs[name]
	if g == nil || g.Len() == 0 || g.Dims() != len(v) {
		return Key{}, 0, false
	}
	var found []hnsw.Node[uint64]
	ix.safely(name, func(g *hnsw.Graph[uint64]) { found = g.Search(v, semanticCandidates) })
	now := ix.now()
	var best *semNode
	var bestSim float32
	for _, f := range found {
		el, ok := ix.nodes[f.Key]
		if !ok {
			continue
		}
		n := el.Value.(*semNode)
		if !now.Before(n.expires) {
			ix.remove(el)
			continue
		}
		if n.context != ctx {
			continue
		}
		if s := cosine(v, n.vec); s >= threshold && (best == nil || s > bestSim) {
			best, bestSim = n, s
		}
	}
	if best == nil {
		return Key{}, 0, false
	}
	return best.exact, bestSim, true
}

// Forget removes the vectors pointing at exact in scope and model (their
// answer is gone from the store).
func (ix *Index) Forget(scope, model string, exact Key) {
	name := graphName(scope, model)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for id, el := range ix.nodes {
		if n := el.Value.(*semNode); n.graph == name && n.exact == exact {
			ix.remove(ix.nodes[id])
		}
	}
}

// Len is the number of vectors held.
func (ix *Index) Len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.nodes)
}

func (ix *Index) remove(el *list.Element) {
	n := el.Value.(*semNode)
	ix.order.Remove(el)
	delete(ix.nodes, n.id)
	ix.safely(n.graph, func(g *hnsw.Graph[uint64]) { g.Delete(n.id) })
	if g := ix.graphs[n.graph]; g != nil && g.Len() == 0 {
		delete(ix.graphs, n.graph)
	}
}

func newGraph() *hnsw.Graph[uint64] {
	g := hnsw.NewGraph[uint64]()
	g.Distance = hnsw.CosineDistance
	return g
}

// safely runs f on the named graph. Deleting from an HNSW graph can leave
// an upper layer without an entry node, which the library does not
// survive; should f panic, the graph is rebuilt from the vectors the index
// keeps and f runs once more on the rebuilt graph.
func (ix *Index) safely(name string, f func(*hnsw.Graph[uint64])) {
	g := ix.graphs[name]
	if g == nil {
		return
	}
	if run(g, f) {
		return
	}
	g = newGraph()
	for el := ix.order.Back(); el != nil; el = el.Prev() {
		if n := el.Value.(*semNode); n.graph == name {
			g.Add(hnsw.MakeNode(n.id, n.vec))
		}
	}
	ix.graphs[name] = g
	run(g, f)
}

func run(g *hnsw.Graph[uint64], f func(*hnsw.Graph[uint64])) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	f(g)
	return true
}
