package sim

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/route"
)

// Defaults for Config's zero fields.
const (
	// DefaultReportInterval: how often each host's agent takes a load
	// report and the balancer's agent reweighs (gpu/score's EWMA is tuned
	// for one-second reports).
	DefaultReportInterval = 1.0
	// DefaultReportDelay: from measurement to the balancer acting on it
	// (scrape, serve, poll, parse). Reports are therefore 0.25 s old when
	// they arrive and up to 1.25 s old when they are replaced.
	DefaultReportDelay = 0.25
	// DefaultWarmup and DefaultMeasure: simulated seconds before and of
	// measurement. Bursts last 20 s on average, so ten minutes holds ~30
	// of them.
	DefaultWarmup  = 60.0
	DefaultMeasure = 600.0
	// maxEvents bounds a run whatever the inputs.
	maxEvents = 200_000_000
)

// Config is one simulation run.
type Config struct {
	Specs    []Spec
	Workload Workload
	// RequestRate is the mean offered request rate (per second).
	RequestRate float64
	Seed        uint64
	// PrefixCaching turns on automatic prefix caching in every engine.
	PrefixCaching bool
	// OracleCache (with PrefixCaching) gives every engine an infinite,
	// free cache of the shared prefixes: every full block of a request's
	// system prompt is a hit on whichever GPU the request lands on, and
	// takes no KV-cache room (Engine). No router can make shared-prefix
	// hits more frequent or cheaper than that, so a run with it bounds
	// what prefix affinity can buy on the same fleet and traffic.
	OracleCache bool

	ReportInterval, ReportDelay float64
	Warmup, Measure             float64

	// Changes are what happens to the fleet during the run (a GPU slows
	// down, fails, returns), in time order.
	Changes []Change
	// TTFTTimeout, when positive, is the gateway's time-to-first-token
	// limit: a request without a first token by then is cancelled (the
	// engine aborts it) and counts as a timeout, with that TTFT.
	TTFTTimeout float64
	// Shadow, when set, receives every engine's KV-cache events (an
	// event-fed prefix index, as llm-d's precise scorer keeps one).
	Shadow KVListener
}

// KVListener hears KV-cache events: block k stored on or removed from
// backend b.
type KVListener interface {
	Stored(b int, k BlockKey)
	Removed(b int, k BlockKey)
}

// Change is something happening to GPU GPU at time At: its speed becomes
// Speed (> 0), or it fails (Fail) or comes back (Recover, empty and with
// a cold cache).
type Change struct {
	At            float64
	GPU           int
	Speed         float64
	Fail, Recover bool
}

// Delays of the failure model, the same for every policy.
const (
	// HealthDelay: from a GPU failing or returning to the balancer's
	// health check seeing it (three failed 1 s probes; one good probe
	// after a second).
	HealthDelay = 3.0
	// RetryDelay: a client whose request was refused or lost retries it
	// after this long, on a new connection; its TTFT counts from the
	// first try.
	RetryDelay = 1.0
)

func (c Config) withDefaults() (Config, error) {
	c.ReportInterval = cmp.Or(c.ReportInterval, DefaultReportInterval)
	c.ReportDelay = cmp.Or(c.ReportDelay, DefaultReportDelay)
	c.Warmup = cmp.Or(c.Warmup, DefaultWarmup)
	c.Measure = cmp.Or(c.Measure, DefaultMeasure)
	switch {
	case len(c.Specs) == 0 || len(c.Specs) > 1024:
		return c, fmt.Errorf("sim: %d GPUs, want 1..1024", len(c.Specs))
	case !(c.RequestRate > 0 && c.RequestRate < 1e6):
		return c, fmt.Errorf("sim: request rate %v outside (0, 1e6)", c.RequestRate)
	case c.Warmup < 0 || !(c.Measure > 0) || c.Warmup+c.Measure > 1e6:
		return c, errors.New("sim: bad warmup or measurement window")
	case !(c.ReportInterval > 0) || c.ReportDelay < 0:
		return c, errors.New("sim: bad report interval or delay")
	case c.OracleCache && !c.PrefixCaching:
		return c, errors.New("sim: an oracle cache needs prefix caching")
	case c.TTFTTimeout < 0:
		return c, errors.New("sim: negative TTFT timeout")
	}
	for _, ch := range c.Changes {
		if ch.GPU < 0 || ch.GPU >= len(c.Specs) || !(ch.At >= 0) || !ch.Fail && !ch.Recover && !(ch.Speed > 0 && ch.Speed <= 10) {
			return c, fmt.Errorf("sim: bad fleet change %+v", ch)
		}
	}
	return c, c.Workload.validate(c.Specs)
}

// Result summarises a run. Latencies are in seconds.
type Result struct {
	Policy string
	// P50TTFT and P99TTFT over requests sent in the measurement window.
	P50TTFT, P99TTFT float64
	// TokensPerSec: output tokens generated in the window, per second.
	TokensPerSec float64
	// HitRate: fraction of the window's prompt tokens served from the
	// prefix cache (vLLM's prefix_cache_hits / prefix_cache_queries).
	HitRate float64
	// SharedHitRate: fraction of the window's shared-prefix tokens that an
	// infinite cache could serve (the full blocks of each request's system
	// prompt) that the prefix cache did serve; 1 under OracleCache.
	SharedHitRate float64
	// P50FloorTTFT is the median over the same requests of the least
	// TTFT each could have under any policy on this fleet with an oracle
	// cache (FloorTTFT): no queue, no batch, the fastest GPU.
	P50FloorTTFT float64
	// Busy is the fraction of the window each backend spent in steps.
	Busy []float64
	// Share of the window's requests per backend, and each backend's p99.
	Share    []float64
	P99ByGPU []float64
	// P90TTFT, and P99 of the lighter tenant (Workload's own clients,
	// when the workload has an Also).
	P90TTFT, P99Light float64
	// Timeouts: fraction of the window's requests cut by TTFTTimeout;
	// Retried: fraction refused by a failed GPU or lost with it and sent
	// again; Failed: fraction lost mid-answer.
	Timeouts, Retried, Failed float64

	Requests []*Request // every request sent, for tests
	Engines  []*Engine
}

type eventKind uint8

const (
	evConn eventKind = iota
	evSend
	evStep
	evSnap
	evDeliver
	evTick
	// evOpen and evClose mark the measurement window, to take each
	// engine's busy time in it.
	evOpen
	evClose
	evChange
	evHealth
	evTimeout
	evScrape
)

type event struct {
	t    float64
	seq  uint64
	kind eventKind
	idx  int // engine
	conn *Conn
	rep  score.Report
	req  *Request
	gen  int // engine generation (evStep), health state (evHealth)
	ch   Change
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].t != q[j].t {
		return q[i].t < q[j].t
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type runner struct {
	cfg     Config
	pol     Policy
	engines []*Engine
	view    View
	q       eventQueue
	seq     uint64
	end     float64 // no new connections or requests after this

	sent       []*Request
	windowToks int
	// down is each engine's true state; gen counts its failures, so a
	// step event of a failed engine is dropped.
	down       []bool
	gen        []int
	timedOut   map[*Request]bool
	retried    map[*Request]bool
	failed     map[*Request]bool
	lastBusy   []float64
	windowBusy []float64 // busy time in the window, per engine
}

func (s *runner) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

// BackendNames are the names the balancer knows the GPUs by.
func BackendNames(specs []Spec) []string {
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = fmt.Sprintf("gpu%d-%s", i, shortName(sp.Name))
	}
	return names
}

func shortName(n string) string {
	switch n {
	case H100.Name:
		return "h100"
	case A10.Name:
		return "a10"
	}
	return "gpu"
}

// Run simulates cfg with policy p. Arrivals depend only on cfg (seed,
// workload, rate), never on p.
func Run(cfg Config, p Policy) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	s := &runner{cfg: cfg, pol: p, end: cfg.Warmup + cfg.Measure}
	names := BackendNames(cfg.Specs)
	for i, sp := range cfg.Specs {
		e := NewEngine(sp, i, cfg.PrefixCaching)
		e.Oracle = cfg.OracleCache
		s.engines = append(s.engines, e)
	}
	s.view = View{
		Backends: names, OpenConns: make([]int, len(names)), InFlight: make([]int, len(names)),
		PrefixBlock: prefixBlocks, Healthy: make([]bool, len(names)),
	}
	for i := range s.view.Healthy {
		s.view.Healthy[i] = true
	}
	s.down, s.gen = make([]bool, len(names)), make([]int, len(names))
	s.timedOut, s.retried, s.failed = map[*Request]bool{}, map[*Request]bool{}, map[*Request]bool{}
	if l := cfg.Shadow; l != nil {
		for i, e := range s.engines {
			e.OnStored = func(k BlockKey) { l.Stored(i, k) }
			e.OnRemoved = func(k BlockKey) { l.Removed(i, k) }
		}
	}
	for _, ch := range cfg.Changes {
		s.push(&event{t: ch.At, kind: evChange, ch: ch})
	}
	if _, ok := p.(Scraper); ok {
		s.push(&event{t: 0, kind: evScrape})
	}
	s.lastBusy = make([]float64, len(names))
	nextID := 0
	conns := arrivals(cfg.Workload, cfg.Seed, cfg.RequestRate, s.end, &nextID, 0)
	for _, c := range conns {
		s.push(&event{t: c.Start, kind: evConn, conn: c})
	}
	for i := range s.engines {
		// Hosts report out of phase with one another, as real agents do.
		phase := cfg.ReportInterval * float64(i) / float64(len(s.engines))
		s.push(&event{t: phase, kind: evSnap, idx: i})
	}
	s.push(&event{t: cfg.ReportInterval, kind: evTick})
	s.windowBusy = make([]float64, len(names))
	s.push(&event{t: cfg.Warmup, kind: evOpen})
	s.push(&event{t: s.end, kind: evClose})

	for n := 0; s.q.Len() > 0; n++ {
		if n > maxEvents {
			return Result{}, errors.New("sim: event limit reached")
		}
		e := heap.Pop(&s.q).(*event)
		s.view.Now = e.t
		switch e.kind {
		case evConn, evSend:
			s.send(e.conn, e.t)
		case evStep:
			if e.gen != s.gen[e.idx] {
				continue // the engine failed during the step
			}
			s.finishStep(e.idx, e.t)
		case evChange:
			s.change(e.ch, e.t)
		case evHealth:
			s.view.Healthy[e.idx] = e.gen == 1
		case evTimeout:
			s.timeout(e.req, e.t)
		case evScrape:
			if e.t > s.end {
				continue
			}
			sc := p.(Scraper)
			for i, en := range s.engines {
				if !s.down[i] {
					sc.Scrape(&s.view, i, Metrics{Waiting: en.Waiting(), Running: en.Running(), KVUsage: en.KVUsage(),
						Adapters: en.Adapters(), MaxLoras: en.Spec.MaxLoras})
				}
			}
			s.push(&event{t: e.t + sc.ScrapeInterval(), kind: evScrape})
		case evSnap:
			if e.t > s.end {
				continue
			}
			if s.down[e.idx] {
				// A failed host's agent reports nothing.
				s.push(&event{t: e.t + cfg.ReportInterval, kind: evSnap, idx: e.idx})
				continue
			}
			s.push(&event{t: e.t + cfg.ReportDelay, kind: evDeliver, idx: e.idx, rep: s.report(e.idx, e.t)})
			s.push(&event{t: e.t + cfg.ReportInterval, kind: evSnap, idx: e.idx})
		case evDeliver:
			p.Report(&s.view, e.idx, e.rep)
		case evTick:
			if e.t > s.end {
				continue
			}
			p.Tick(&s.view)
			s.push(&event{t: e.t + cfg.ReportInterval, kind: evTick})
		case evOpen:
			for i, en := range s.engines {
				s.windowBusy[i] -= en.BusyTime(e.t)
			}
		case evClose:
			for i, en := range s.engines {
				s.windowBusy[i] += en.BusyTime(e.t)
			}
		}
	}
	for _, r := range s.sent {
		if r.Done < 0 && !s.timedOut[r] && !s.failed[r] {
			// Cannot happen for a validated workload; never report a
			// percentile that silently left requests out.
			return Result{}, fmt.Errorf("sim: request %d never completed", r.ID)
		}
	}
	return s.result(), nil
}

func (s *runner) send(c *Conn, now float64) {
	r := c.Reqs[c.next]
	r.Arrive = now
	if c.retryOf >= 0 {
		r.Arrive, c.retryOf = c.retryOf, -1
	}
	if !s.pol.PerRequest() && c.Backend < 0 {
		c.Backend = s.pol.Pick(&s.view, c, nil)
		s.view.OpenConns[c.Backend]++
	}
	b := c.Backend
	if s.pol.PerRequest() {
		b = s.pol.Pick(&s.view, c, r)
	}
	r.Backend = b
	if !s.retried[r] {
		s.sent = append(s.sent, r)
	}
	if s.down[b] {
		// Connection refused: the gateway's attempt fails at once and it
		// answers 502; the client tries again on a new connection.
		s.attempt(r, b, route.OutcomeFailure)
		s.retry(c, r, now)
		return
	}
	s.view.InFlight[b]++
	if s.cfg.TTFTTimeout > 0 {
		s.push(&event{t: now + s.cfg.TTFTTimeout - (now - r.Arrive), kind: evTimeout, req: r, gen: s.gen[b]})
	}
	e := s.engines[b]
	e.Enqueue(r)
	s.kick(e, now)
}

// retry sends r again after RetryDelay on a new connection, keeping its
// first send time.
func (s *runner) retry(c *Conn, r *Request, now float64) {
	s.retried[r] = true
	if c.Backend >= 0 {
		s.view.OpenConns[c.Backend]--
		c.Backend = -1
	}
	c.retryOf = r.Arrive
	s.push(&event{t: now + RetryDelay, kind: evSend, conn: c})
}

// next moves c on after its current request ended (answered, timed out
// or failed): the next request after the think time, or close.
func (s *runner) next(c *Conn, now float64) {
	c.next++
	if c.next < len(c.Reqs) && now < s.end {
		s.push(&event{t: now + c.Thinks[c.next-1], kind: evSend, conn: c})
		return
	}
	if c.Backend >= 0 {
		s.view.OpenConns[c.Backend]--
		c.Backend = -1
	}
}

// timeout cancels r if it has no first token yet: the gateway answers
// 504, the engine aborts it, the client moves on.
func (s *runner) timeout(r *Request, now float64) {
	if r.FirstToken >= 0 || r.Done >= 0 || s.timedOut[r] || s.failed[r] || r.Backend < 0 || s.down[r.Backend] {
		return
	}
	e := s.engines[r.Backend]
	if !e.Abort(r) {
		return
	}
	s.timedOut[r] = true
	s.attempt(r, r.Backend, route.OutcomeNeutral)
	s.view.InFlight[r.Backend]--
	s.next(r.Conn, now)
	s.kick(e, now)
}

// change applies a fleet change.
func (s *runner) change(ch Change, now float64) {
	e := s.engines[ch.GPU]
	switch {
	case ch.Fail:
		if s.down[ch.GPU] {
			return
		}
		s.down[ch.GPU] = true
		s.gen[ch.GPU]++
		for _, r := range e.Fail(now) {
			s.view.InFlight[ch.GPU]--
			// The gateway sees the connection reset (or the stream break
			// off) on each attempt open there.
			s.attempt(r, ch.GPU, route.OutcomeFailure)
			c := r.Conn
			if r.FirstToken >= 0 {
				// Cut mid-answer: the client has its first token and an
				// error; it moves on.
				s.failed[r] = true
				if c.Backend >= 0 {
					s.view.OpenConns[c.Backend]--
					c.Backend = -1
				}
				c.retryOf = -1
				s.next(c, now)
				continue
			}
			s.retry(c, r, now)
		}
		// Connections idle between requests find out at their next
		// request (refused, retried).
		s.push(&event{t: now + HealthDelay, kind: evHealth, idx: ch.GPU, gen: 0})
	case ch.Recover:
		if !s.down[ch.GPU] {
			return
		}
		s.down[ch.GPU] = false
		s.push(&event{t: now + HealthDelay, kind: evHealth, idx: ch.GPU, gen: 1})
	default:
		_ = e.SetSpeed(ch.Speed)
	}
}

// AttemptObserver is a Policy that hears how each of its requests'
// attempts on a backend ended, as the gateway sees it: success when the
// backend answered, failure when the connection was refused or reset,
// neutral when the gateway's TTFT timeout cut it. (The gateway also sees
// each streamed request's first token, Request.FirstToken.)
type AttemptObserver interface {
	Attempt(v *View, r *Request, backend int, o route.Outcome)
}

func (s *runner) attempt(r *Request, b int, o route.Outcome) {
	if ob, is := s.pol.(AttemptObserver); is {
		ob.Attempt(&s.view, r, b, o)
	}
}

func (s *runner) kick(e *Engine, now float64) {
	if dur, ok := e.Start(now); ok {
		s.push(&event{t: now + dur, kind: evStep, idx: e.Index, gen: s.gen[e.Index]})
	}
}

func (s *runner) finishStep(i int, now float64) {
	e := s.engines[i]
	tokens, done := e.Finish(now)
	if now > s.cfg.Warmup && now <= s.end {
		s.windowToks += tokens
	}
	for _, r := range done {
		s.attempt(r, r.Backend, route.OutcomeSuccess)
		s.view.InFlight[r.Backend]--
		s.next(r.Conn, now)
	}
	s.kick(e, now)
}

func (s *runner) result() Result {
	res := Result{Policy: s.pol.Name(), Requests: s.sent, Engines: s.engines, Share: make([]float64, len(s.engines))}
	var ttft, floor, light []float64
	var timeouts, retried, failed float64
	per := make([][]float64, len(s.engines))
	var promptToks, cachedToks, sharedToks, sharedHit float64
	for _, r := range s.sent {
		if r.Arrive < s.cfg.Warmup || r.Arrive >= s.end {
			continue
		}
		t := r.FirstToken - r.Arrive
		if s.timedOut[r] {
			t = s.cfg.TTFTTimeout
			timeouts++
		}
		if s.retried[r] {
			retried++
		}
		if s.failed[r] {
			failed++
		}
		ttft = append(ttft, t)
		if r.Conn.Tenant == 0 {
			light = append(light, t)
		}
		floor = append(floor, FloorTTFT(s.cfg.Specs, r))
		per[r.Backend] = append(per[r.Backend], t)
		res.Share[r.Backend]++
		promptToks += float64(r.Prompt)
		cachedToks += float64(r.CachedTokens)
		full := fullPrefix(r)
		sharedToks += float64(full)
		sharedHit += float64(min(r.CachedTokens, full))
	}
	for i := range res.Share {
		res.Share[i] /= math.Max(float64(len(ttft)), 1)
	}
	slices.Sort(ttft)
	for _, xs := range per {
		slices.Sort(xs)
		res.P99ByGPU = append(res.P99ByGPU, quantile(xs, 0.99))
	}
	res.P50TTFT = quantile(ttft, 0.50)
	res.P90TTFT = quantile(ttft, 0.90)
	res.P99TTFT = quantile(ttft, 0.99)
	slices.Sort(light)
	res.P99Light = quantile(light, 0.99)
	if n := float64(len(ttft)); n > 0 {
		res.Timeouts, res.Retried, res.Failed = timeouts/n, retried/n, failed/n
	}
	slices.Sort(floor)
	res.P50FloorTTFT = quantile(floor, 0.50)
	res.TokensPerSec = float64(s.windowToks) / s.cfg.Measure
	for _, b := range s.windowBusy {
		res.Busy = append(res.Busy, b/s.cfg.Measure)
	}
	if promptToks > 0 {
		res.HitRate = cachedToks / promptToks
	}
	if sharedToks > 0 {
		res.SharedHitRate = sharedHit / sharedToks
	}
	return res
}

// fullPrefix is how many of r's prompt tokens an oracle cache serves: the
// full blocks of its system prompt (as in admit, never the prompt's last
// token).
func fullPrefix(r *Request) int {
	if r.Prefix < 0 {
		return 0
	}
	return min(r.PrefixLen/BlockTokens, (r.Prompt-1)/BlockTokens) * BlockTokens
}

// FloorTTFT is the least time to first token r can have on any GPU of
// specs, whatever the policy and the cache: alone on an idle engine (no
// queue, no other sequence in its steps), with every full block of its
// shared prefix cached (the oracle cache), so only the rest of its prompt
// is prefilled, in chunks of the step budget.
func FloorTTFT(specs []Spec, r *Request) float64 {
	cached := fullPrefix(r)
	best := math.Inf(1)
	for _, sp := range specs {
		t := 0.0
		for left := r.Prompt - cached; left > 0; left -= sp.MaxBatchedTokens {
			t += sp.StepTime(0, 0, min(left, sp.MaxBatchedTokens))
		}
		best = min(best, t)
	}
	return best
}

// quantile of sorted xs (nearest rank); NaN when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// Capacity is the saturated request throughput (per second) of one engine
// of spec on workload w: a backlog of n requests from w is served flat out
// and the completion rate is taken between the 20th and 80th percentile of
// completions, away from the ramp-up and the drain.
func Capacity(spec Spec, w Workload, prefixCaching bool, seed uint64, n int) float64 {
	id := 0
	var reqs []*Request
	for _, c := range arrivals(w, seed^0xca9ac17, 1, 2*float64(n)+100, &id, 0) {
		for _, r := range c.Reqs {
			r.Arrive = 0
			reqs = append(reqs, r)
			if len(reqs) == n {
				break
			}
		}
		if len(reqs) == n {
			break
		}
	}
	e := NewEngine(spec, 0, prefixCaching)
	for _, r := range reqs {
		e.Enqueue(r)
	}
	now := 0.0
	var doneAt []float64
	for !e.Idle() {
		dur, ok := e.Start(now)
		if !ok {
			break
		}
		now += dur
		_, done := e.Finish(now)
		for range done {
			doneAt = append(doneAt, now)
		}
	}
	lo, hi := len(doneAt)/5, len(doneAt)*4/5
	if hi <= lo || doneAt[hi] <= doneAt[lo] {
		return 0
	}
	return float64(hi-lo) / (doneAt[hi] - doneAt[lo])
}
