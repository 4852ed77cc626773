package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Workload shapes traffic. Lengths are log-normal, the usual fit to
// conversational traces.
type Workload struct {
	// PromptMedian and PromptSigma: the user part of the prompt (tokens,
	// log-normal). ShareGPT's raw prompts average 161 tokens and its
	// answers 338 (Kwon et al., "Efficient Memory Management for LLM
	// Serving with PagedAttention", SOSP 2023, Fig. 11); gateway traffic
	// carries chat templates and history on top, hence a 300-token median
	// with a heavy tail.
	PromptMedian, PromptSigma float64
	// OutputMedian and OutputSigma: generated tokens (log-normal).
	OutputMedian, OutputSigma float64
	// MaxPrompt and MaxOutput clamp the tails (a context limit).
	MaxPrompt, MaxOutput int

	// Connections: each client connection sends RequestsPerConn requests
	// on average (geometric), one at a time, pausing ThinkTime on average
	// (exponential) after each response, as an HTTP/1.1 keep-alive client
	// or an agent loop does.
	RequestsPerConn float64
	ThinkTime       float64

	// Burstiness: connection arrivals are a two-state Markov-modulated
	// Poisson process; the rate is BurstHigh or BurstLow times the mean,
	// each state lasting BurstDwell on average (exponential).
	BurstHigh, BurstLow, BurstDwell float64

	// Shared prefixes: a connection uses one of Prefixes system prompts
	// (popularity Zipf with exponent PrefixZipf) with probability
	// PrefixShare; lengths log-normal around PrefixMedian, clamped to
	// [MinPrefix, MaxPrefix] (MinPrefix 0 means minPrefixTokens).
	Prefixes     int
	PrefixShare  float64
	PrefixZipf   float64
	PrefixMedian float64
	PrefixSigma  float64
	MinPrefix    int
	MaxPrefix    int

	// Adapters: each connection names one of Adapters LoRA adapters
	// (Zipf popularity with exponent AdapterZipf) for all its requests;
	// 0 serves the base model only.
	Adapters    int
	AdapterZipf float64

	// Also is a second population of clients with a shape of its own (a
	// heavy tenant, bursts of long-context requests) that sends AlsoShare
	// of the requests, on its own burst process; the connections of both
	// are merged by start time. Also may not have an Also.
	Also      *Workload
	AlsoShare float64
}

// minPrefixTokens is the shortest system prompt drawn when a workload sets
// no MinPrefix.
const minPrefixTokens = 256

// minPrefix is w's effective lower clamp on system-prompt lengths.
func (w Workload) minPrefix() int {
	if w.MinPrefix == 0 {
		return minPrefixTokens
	}
	return w.MinPrefix
}

// Limits on a Workload's fields, so a typo cannot hang or explode a run.
const (
	maxRequestsPerConn = 1000
	maxPrefixes        = 100_000
	maxTokens          = 1 << 20
)

// validate checks w against the engines it will run on: every request must
// fit an empty KV cache on its own, or it could never be admitted.
func (w Workload) validate(specs []Spec) error {
	switch {
	case !(w.PromptMedian >= 1) || !(w.OutputMedian >= 1) || w.PromptSigma < 0 || w.OutputSigma < 0:
		return fmt.Errorf("sim: bad length distribution")
	case w.MaxPrompt < 4 || w.MaxOutput < 1 || w.MaxPrompt > maxTokens || w.MaxOutput > maxTokens:
		return fmt.Errorf("sim: max prompt %d / output %d outside bounds", w.MaxPrompt, w.MaxOutput)
	case !(w.RequestsPerConn >= 1 && w.RequestsPerConn <= maxRequestsPerConn) || w.ThinkTime < 0:
		return fmt.Errorf("sim: bad connection shape")
	case !(w.BurstHigh > 0) || !(w.BurstLow > 0) || !(w.BurstDwell > 0):
		return fmt.Errorf("sim: bad burst process")
	case w.Prefixes < 0 || w.Prefixes > maxPrefixes || w.PrefixShare < 0 || w.PrefixShare > 1:
		return fmt.Errorf("sim: bad prefix settings")
	case w.Prefixes > 0 && (!(w.PrefixMedian >= 1) || w.PrefixSigma < 0 || w.MinPrefix < 0 || w.minPrefix() > w.MaxPrefix || w.MaxPrefix > maxTokens):
		return fmt.Errorf("sim: bad prefix length distribution")
	}
	if w.Adapters < 0 || w.Adapters > maxPrefixes || w.AdapterZipf < 0 {
		return fmt.Errorf("sim: bad adapter settings")
	}
	if w.Also != nil {
		if w.Also.Also != nil || !(w.AlsoShare > 0 && w.AlsoShare < 1) {
			return fmt.Errorf("sim: bad second client population")
		}
		if err := w.Also.validate(specs); err != nil {
			return err
		}
	}
	largest := w.MaxPrompt + w.MaxOutput
	if w.Prefixes > 0 {
		largest += w.MaxPrefix
	}
	for _, sp := range specs {
		if kv := sp.KVTokens(); largest > kv {
			return fmt.Errorf("sim: a request of up to %d tokens does not fit %s's %d-token KV cache", largest, sp.Name, kv)
		}
	}
	return nil
}

// Chat is the default conversational workload.
var Chat = Workload{
	PromptMedian: 300, PromptSigma: 1.0,
	OutputMedian: 200, OutputSigma: 0.9,
	MaxPrompt: 8192, MaxOutput: 2048,
	RequestsPerConn: 8, ThinkTime: 2,
	BurstHigh: 1.4, BurstLow: 0.6, BurstDwell: 20,
}

// SharedPrefix is the second workload: most
// requests share a few long system prompts, sent by many clients. It is
// the shape of agentic and coding-assistant deployments, where every
// request of an application carries the same instructions and tool
// definitions ahead of its own part, and the same prompt arrives from
// every user of that application (cross-client reuse), unlike TraceB,
// where reuse stays mostly within one client. Parameters, fixed before
// any run of the benchmark with them:
//
//   - Prompt length: log-normal, median 16000 tokens, sigma 0.25, clamped
//     to 8192..24576. Public figure: Claude Code's /context command, which
//     itemises the fixed part of every request, shows 14.8k tokens (3.2k
//     system prompt + 11.6k built-in tool definitions; Sonnet 4,
//     dannywillems.github.io, 2026-01-16), 17.8k (6.2k + 11.6k,
//     jdhodges.com) and 20.2k (2.6k + 17.6k; Opus 4.5, wmedia.es), before
//     any MCP server's tools. Those are Claude tokenizer counts; that a
//     Llama-3 tokenizer gives similar counts for English and JSON schema
//     text is our assumption. 24576 is also the most that fits an A10's
//     KV cache beside the longest request-specific part and answer.
//   - Prompts: 8 (assumption: "a few"; e.g. a coding agent and its
//     sub-agent and plan-mode variants, a RAG assistant, a support bot
//     served from one pool), Zipf(1.0) popularity as in TraceB
//     (assumption), carried by 90% of connections ("most requests").
//     Working set: ~8 x 16k = ~128k tokens, a third of an H100's KV cache
//     (~403k) and four times an A10's (~31k).
//   - Request-specific part (user turn, tool results, retrieved text):
//     log-normal, median 1000 tokens, sigma 1.0 as in TraceB, clamped at
//     4096 so the longest request fits an A10 (assumption; a session's own
//     growing history, which a real agent also reuses, is not modelled:
//     every request's own part is unique).
//   - Answers and connection shape: as Chat (keep-alive clients, 8
//     requests per connection, 2 s think time): at 80% load about 50
//     client connections are open at once (~470 over a run of seed 1),
//     each prompt is sent by many of them, and Maglev spreads each
//     prompt's clients over every GPU.
//
// Preble (Srivatsa et al., "Preble: Efficient Distributed Prompt
// Scheduling for LLM Serving", ICLR 2025, arXiv 2407.00023) studies this
// class of workload (tools and agents, document QA, program generation):
// prompts much longer than outputs, shared across different users'
// requests that need the same tools or instructions.
var SharedPrefix = func() Workload {
	w := Chat
	w.PromptMedian, w.PromptSigma, w.MaxPrompt = 1000, 1.0, 4096
	w.Prefixes, w.PrefixShare, w.PrefixZipf = 8, 0.9, 1.0
	w.PrefixMedian, w.PrefixSigma = 16000, 0.25
	w.MinPrefix, w.MaxPrefix = 8192, 24576
	return w
}()

// GIEHighCache is the Gateway API Inference Extension's own published
// benchmark for prefix-cache-aware routing, transcribed onto this
// simulator before any run with it, so that the shared-prefix goal is
// also measured on the peer's definition of the workload rather than only
// on ours. Source: kubernetes-sigs/gateway-api-inference-extension,
// benchmarking/prefix-cache-aware/high-cache-values.yaml (inference-perf's
// shared_prefix data: num_groups 256, num_prompts_per_group 16,
// system_prompt_len 2048, question_len 256, output_len 256, completions
// with ignore_eos), whose generator (inference-perf,
// datagen/shared_prefix_datagen.py) shuffles the 4096 prompts and sends
// them in turn, so the 256 system prompts are equally popular. Mapping:
//
//   - 256 system prompts of exactly 2048 tokens, uniform popularity
//     (PrefixZipf 0), carried by every request (PrefixShare 1);
//   - a 256-token request-specific part and a 256-token answer, exactly
//     (sigma 0);
//   - every request on its own connection with no think time and no
//     bursts: inference-perf's load is open-loop at a constant rate.
//
// Differences, both conservative for affinity: the peer runs Qwen3-32B,
// whose KV cache per GPU is several times smaller than this fleet's 8B
// model's, so the same prompts fit it less; and each of the peer's 4096
// full prompts recurs every 4096 requests, a reuse of the question part
// that this simulator does not model (every request's own part is unique
// here, for every policy alike). Working set: 256 x 2048 = 524k tokens,
// more than an H100's ~403k-token cache.
var GIEHighCache = Workload{
	PromptMedian: 256, PromptSigma: 0, MaxPrompt: 256,
	OutputMedian: 256, OutputSigma: 0, MaxOutput: 256,
	RequestsPerConn: 1, ThinkTime: 0,
	BurstHigh: 1, BurstLow: 1, BurstDwell: 20,
	Prefixes: 256, PrefixShare: 1, PrefixZipf: 0,
	PrefixMedian: 2048, PrefixSigma: 0, MinPrefix: 2048, MaxPrefix: 2048,
}

// TraceB is business-facing API traffic, where prefix reuse comes
// from applications' fixed system prompts (instructions, tool definitions,
// few-shot examples) rather than from conversations. Its shape follows the
// one published characterisation of production prefix reuse, Wang et al.,
// "KVCache Cache in the Wild: Characterizing and Optimizing KVCache Cache
// at a Large Cloud Provider" (USENIX ATC 2025, arXiv 2506.02634), trace B
// (to-B API traffic at Alibaba Bailian): requests are single-turn (under
// 0.1% multi-turn), 97% of cache hits come from single-turn requests
// sharing prompts, reuse is skewed, and an infinite cache would hit 54% of
// prompt tokens (IdealHitRate; TestSharedPrefixMatchesTrace). These
// figures are as the paper's abstract and published summaries of it state
// them; the full text was not at hand when this was written.
//
// What the paper does not publish is our assumption, stated here: 128
// applications' system prompts (log-normal, median 2000 tokens, sigma
// 0.6, 256..8192), Zipf(1.0) popularity (a few applications send most
// traffic); 80% of connections carry one. The request-specific part (user
// input, retrieved documents) is log-normal with median 1000 tokens, sigma
// 1.0: the length at which the whole reproduces trace B's 54% ideal hit
// rate. (Until 2026-11-25 this was the benchmark's "shared-prefix"
// workload; it is now reported as workload=trace-b beside SharedPrefix.)
var TraceB = func() Workload {
	w := Chat
	w.PromptMedian, w.PromptSigma = 1000, 1.0
	w.Prefixes, w.PrefixShare, w.PrefixZipf = 128, 0.8, 1.0
	w.PrefixMedian, w.PrefixSigma, w.MaxPrefix = 2000, 0.6, 8192
	return w
}()

// IdealHitRate is the fraction of prompt tokens that an infinite prefix
// cache shared by the whole fleet would serve, over the first n requests
// of w (the "ideal hit ratio" of Wang et al.): a request hits the full
// blocks of its shared prefix if any earlier request carried it.
func IdealHitRate(w Workload, seed uint64, n int) float64 {
	id := 0
	seen := map[int]bool{}
	var total, hit float64
	for _, c := range arrivals(w, seed, 1, 1e9, &id, n) {
		for _, r := range c.Reqs {
			total += float64(r.Prompt)
			if r.Prefix >= 0 {
				if seen[r.Prefix] {
					hit += float64(r.PrefixLen / BlockTokens * BlockTokens)
				}
				seen[r.Prefix] = true
			}
		}
	}
	if total == 0 {
		return 0
	}
	return hit / total
}

// Conn is one client connection with its requests drawn up front, so that
// every policy sees exactly the same traffic.
type Conn struct {
	ID     int
	Hash   uint64 // the flow hash an L4 balancer would compute
	Start  float64
	Reqs   []*Request
	Thinks []float64 // pause after response i
	next   int
	// Backend is the connection's backend under an L4 policy, -1 if none.
	Backend int
	// Tenant is the client population (0: Workload's own, 1: its Also).
	Tenant int
	// retryOf is when the request being retried was first sent (a
	// refusal or a failed GPU lost it), -1 if none.
	retryOf float64
}

// lognormal draws a log-normal value with the given median, clamped to
// [lo, hi].
func lognormal(r *rand.Rand, median, sigma float64, lo, hi int) int {
	v := int(math.Round(median * math.Exp(sigma*r.NormFloat64())))
	return min(max(v, lo), hi)
}

// prefixTable draws the system prompts' lengths and popularity.
type prefixTable struct {
	lens []int
	cum  []float64
}

func newPrefixTable(w Workload, seed uint64) prefixTable {
	var t prefixTable
	if w.Prefixes == 0 {
		return t
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var sum float64
	for i := 0; i < w.Prefixes; i++ {
		t.lens = append(t.lens, lognormal(r, w.PrefixMedian, w.PrefixSigma, w.minPrefix(), w.MaxPrefix))
		sum += 1 / math.Pow(float64(i+1), w.PrefixZipf)
		t.cum = append(t.cum, sum)
	}
	for i := range t.cum {
		t.cum[i] /= sum
	}
	return t
}

// zipfTable is a popularity table over n items (Zipf with exponent z).
func zipfTable(n int, z float64) prefixTable {
	var t prefixTable
	var sum float64
	for i := 0; i < n; i++ {
		sum += 1 / math.Pow(float64(i+1), z)
		t.cum = append(t.cum, sum)
	}
	for i := range t.cum {
		t.cum[i] /= sum
	}
	return t
}

func (t prefixTable) pick(r *rand.Rand) int {
	u := r.Float64()
	for i, c := range t.cum {
		if u < c {
			return i
		}
	}
	return len(t.cum) - 1
}

// arrivals generates connections with mean request rate reqRate over
// [0, until), deterministically from seed, stopping early once maxReqs
// requests are drawn (0: no limit). With w.Also, the two populations are
// drawn apart (the second from a derived seed) and merged by start.
func arrivals(w Workload, seed uint64, reqRate, until float64, firstID *int, maxReqs int) []*Conn {
	if w.Also == nil {
		return arrivalsOf(w, seed, reqRate, until, firstID, maxReqs, 0)
	}
	main := w
	main.Also = nil
	a := arrivalsOf(main, seed, reqRate*(1-w.AlsoShare), until, firstID, maxReqs, 0)
	b := arrivalsOf(*w.Also, seed^0x7e4a47, reqRate*w.AlsoShare, until, firstID, maxReqs, 1)
	all := append(a, b...)
	slices.SortStableFunc(all, func(x, y *Conn) int { return cmp.Compare(x.Start, y.Start) })
	for i, c := range all {
		c.ID = i
	}
	return all
}

// arrivalsOf is arrivals for one population of clients (tenant).
func arrivalsOf(w Workload, seed uint64, reqRate, until float64, firstID *int, maxReqs, tenant int) []*Conn {
	r := rand.New(rand.NewPCG(seed, 1))
	adapters := zipfTable(w.Adapters, w.AdapterZipf)
	prefixes := newPrefixTable(w, seed)
	connRate := reqRate / w.RequestsPerConn
	startID := *firstID
	var conns []*Conn
	high := r.IntN(2) == 0
	stateEnd := r.ExpFloat64() * w.BurstDwell
	t := 0.0
	for {
		mult := w.BurstLow
		if high {
			mult = w.BurstHigh
		}
		// Memorylessness: draw the next gap at the current rate; if it
		// falls past the state's end, restart from there.
		gap := r.ExpFloat64() / (connRate * mult)
		if t+gap >= stateEnd {
			t = stateEnd
			high = !high
			stateEnd = t + r.ExpFloat64()*w.BurstDwell
			continue
		}
		t += gap
		if t >= until || maxReqs > 0 && *firstID-startID >= maxReqs {
			return conns
		}
		c := &Conn{ID: len(conns), Start: t, Backend: -1, Tenant: tenant, retryOf: -1}
		cr := rand.New(rand.NewPCG(seed, uint64(c.ID)+2))
		c.Hash = cr.Uint64()
		n := 1
		for cr.Float64() >= 1/w.RequestsPerConn {
			n++
		}
		prefix, prefixLen := -1, 0
		if w.Prefixes > 0 && cr.Float64() < w.PrefixShare {
			prefix = prefixes.pick(cr)
			prefixLen = prefixes.lens[prefix]
		}
		adapter := 0
		if w.Adapters > 0 {
			adapter = 1 + adapters.pick(cr)
		}
		for i := 0; i < n; i++ {
			user := lognormal(cr, w.PromptMedian, w.PromptSigma, 4, w.MaxPrompt)
			req := &Request{
				ID: *firstID, Conn: c,
				Prompt: prefixLen + user, Prefix: prefix, PrefixLen: prefixLen, Adapter: adapter,
				Output:  lognormal(cr, w.OutputMedian, w.OutputSigma, 1, w.MaxOutput),
				Backend: -1, FirstToken: -1, Done: -1,
			}
			*firstID++
			c.Reqs = append(c.Reqs, req)
			c.Thinks = append(c.Thinks, cr.ExpFloat64()*w.ThinkTime)
		}
		conns = append(conns, c)
	}
}
