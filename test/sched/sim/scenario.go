package sim

import (
	"fmt"

	"github.com/infergate/infergate/gpu/score"
)

// Scenario is one fleet, workload and course of events of the
// comparison. The scenarios below were fixed, with their parameters,
// before their first run, and are run at seeds 1-3; none was changed
// after seeing a result.
type Scenario struct {
	Name    string
	Fleet   []Spec
	Work    Workload
	Caching bool
	// Changes are relative to the start of the measurement window.
	Changes []Change
	// Changing marks scenarios where the fleet's load or speed changes
	// during the window (the targets differ).
	Changing bool
	// Adapters: the workload names LoRA adapters (the EPP adds its LoRA
	// scorer).
	Adapters bool
}

// ScenarioLoad is the fraction of the (nominal) fleet's capacity offered.
const ScenarioLoad = 0.80

// ScenarioWarmup and ScenarioMeasure: the window of a scenario run; the
// unstable-policy check runs round robin and least connections also at
// twice the measure.
const (
	ScenarioWarmup  = 60.0
	ScenarioMeasure = 300.0
	// ScenarioTimeout is the gateway's default time-to-first-token limit.
	ScenarioTimeout = 60.0
)

var (
	equalFleet = []Spec{H100, H100, H100, H100}
	mixedFleet = []Spec{H100, H100, A10, A10}
)

// LongContext is a population sending long-context requests (documents,
// code bases) in bursts: prompts log-normal around 32k tokens (16k..64k),
// 200-token answers, one request per connection, arriving only in bursts
// (rate 1.95x or 0.05x its mean, states of 20 s on average).
var LongContext = Workload{
	PromptMedian: 32000, PromptSigma: 0.3, MaxPrompt: 65536, OutputMedian: 200, OutputSigma: 0.5, MaxOutput: 1024,
	RequestsPerConn: 1, BurstHigh: 1.95, BurstLow: 0.05, BurstDwell: 20,
}

// HeavyTenant is one tenant's batch or agent traffic beside interactive
// users: 3000-token prompts (256..12000), long sessions (50 requests per
// connection, 0.2 s between them), coming and going (rate 1.9x or 0.1x
// its mean, states of 30 s on average).
var HeavyTenant = Workload{
	PromptMedian: 3000, PromptSigma: 0.5, MaxPrompt: 12000, OutputMedian: 300, OutputSigma: 0.7, MaxOutput: 1024,
	RequestsPerConn: 50, ThinkTime: 0.2, BurstHigh: 1.9, BurstLow: 0.1, BurstDwell: 30,
}

// LLMDSharedPrompt is llm-d's published benchmark shape for precise
// prefix-cache-aware scheduling ("KV-Cache Wins You Can See", llm-d blog,
// 2025: many enterprise customers, each with a ~6,000-token system
// prompt, asking ~1,200-token questions): 150 prompts of 6000 tokens,
// equally popular, on every request; 1200-token questions; answers of 250
// tokens (the post does not give them; our assumption); open loop, one
// request per connection, no bursts. Working set 900k tokens: more than
// two H100s' caches, less than four.
var LLMDSharedPrompt = Workload{
	PromptMedian: 1200, MaxPrompt: 1200, OutputMedian: 250, MaxOutput: 250,
	RequestsPerConn: 1, BurstHigh: 1, BurstLow: 1, BurstDwell: 20,
	Prefixes: 150, PrefixShare: 1, PrefixMedian: 6000, MinPrefix: 6000, MaxPrefix: 6000,
}

// Scenarios are the comparison's scenarios, in report order.
func Scenarios() []Scenario {
	chat := Chat
	withLong := Chat
	withLong.Also, withLong.AlsoShare = &LongContext, 0.03
	withHeavy := Chat
	withHeavy.Also, withHeavy.AlsoShare = &HeavyTenant, 0.30
	lora := Chat
	lora.Adapters, lora.AdapterZipf = 32, 1.0
	loraH100 := H100
	// vLLM's --max-loras 4 (its default is 1; deployments serving many
	// adapters raise it) and 20 ms to load an adapter from host memory
	// (assumption).
	loraH100.MaxLoras, loraH100.AdapterLoad = 4, 0.02
	return []Scenario{
		{Name: "steady", Fleet: mixedFleet, Work: chat},
		{Name: "throttle", Fleet: equalFleet, Work: chat, Changing: true,
			Changes: []Change{{At: 60, GPU: 0, Speed: 0.6}, {At: 210, GPU: 0, Speed: 1}}},
		{Name: "fail", Fleet: equalFleet, Work: chat, Changing: true,
			Changes: []Change{{At: 60, GPU: 1, Fail: true}, {At: 150, GPU: 1, Recover: true}}},
		{Name: "long-bursts", Fleet: equalFleet, Work: withLong, Changing: true},
		{Name: "heavy-tenant", Fleet: mixedFleet, Work: withHeavy, Changing: true},
		{Name: "lora", Fleet: []Spec{loraH100, loraH100, loraH100, loraH100}, Work: lora, Adapters: true},
		{Name: "ie-prefix", Fleet: mixedFleet, Work: GIEHighCache, Caching: true},
		{Name: "llmd-prefix", Fleet: equalFleet, Work: LLMDSharedPrompt, Caching: true},
	}
}

// ScenarioPolicies are the policies every scenario runs, infergate's
// first: "infergate" is the production picker (l7/pick) on its own
// approximate prefix index, "infergate-kv" the same picker given the
// event-fed index that llmd-precise reads (pick.Picker.PickMatched), as
// the gateway's KV-event path would feed it.
var ScenarioPolicies = []string{"infergate", "infergate-kv", "gpu-l4", "static-maglev", "static-wrr", "ie-epp", "llmd-precise",
	"least-queue", "round-robin", "least-conn"}

// NewScenarioPolicy returns the named policy for sc; precise is the
// event-fed index the run feeds (Config.Shadow), for llmd-precise.
func NewScenarioPolicy(name string, sc Scenario, seed uint64, precise *PreciseIndex) (Policy, error) {
	names := BackendNames(sc.Fleet)
	switch name {
	case "infergate":
		return NewGPUPrefix(names, score.Config{})
	case "infergate-kv":
		g, err := NewGPUPrefix(names, score.Config{})
		if err == nil {
			g.Precise = precise
		}
		return g, err
	case "gpu-l4":
		return NewGPU(names, score.Config{})
	case "static-maglev":
		return NewStaticMaglev(sc.Fleet), nil
	case "static-wrr":
		return NewStaticWRR(sc.Fleet), nil
	case "ie-epp":
		return NewEndpointPicker(len(sc.Fleet), sc.Adapters, nil, seed), nil
	case "llmd-precise":
		return NewEndpointPicker(len(sc.Fleet), sc.Adapters, precise, seed), nil
	case "least-queue":
		return &LeastQueue{}, nil
	case "round-robin":
		return &RoundRobin{}, nil
	case "least-conn":
		return &LeastConn{}, nil
	}
	return nil, fmt.Errorf("sim: unknown policy %q", name)
}

// ScenarioResult is one run of a scenario.
type ScenarioResult struct {
	Scenario, Policy string
	Seed             uint64
	Measure          float64
	Result
}

// RunScenario runs sc with the named policy at seed, at ScenarioLoad of
// capacity (req/s, measured beforehand with Capacity), over measure
// seconds (0: ScenarioMeasure).
func RunScenario(sc Scenario, policy string, seed uint64, capacity, measure float64) (ScenarioResult, error) {
	if measure == 0 {
		measure = ScenarioMeasure
	}
	var precise *PreciseIndex
	if policy == "llmd-precise" || policy == "infergate-kv" {
		precise = NewPreciseIndex()
		if err := precise.checkBackends(len(sc.Fleet)); err != nil {
			return ScenarioResult{}, err
		}
	}
	p, err := NewScenarioPolicy(policy, sc, seed, precise)
	if err != nil {
		return ScenarioResult{}, err
	}
	cfg := Config{
		Specs: sc.Fleet, Workload: sc.Work, RequestRate: ScenarioLoad * capacity, PrefixCaching: sc.Caching,
		Seed: seed, Warmup: ScenarioWarmup, Measure: measure, TTFTTimeout: ScenarioTimeout,
	}
	if precise != nil {
		cfg.Shadow = precise
	}
	for _, ch := range sc.Changes {
		ch.At += ScenarioWarmup
		cfg.Changes = append(cfg.Changes, ch)
	}
	res, err := Run(cfg, p)
	if err != nil {
		return ScenarioResult{}, fmt.Errorf("%s/%s seed %d: %w", sc.Name, policy, seed, err)
	}
	res.Requests, res.Engines = nil, nil
	return ScenarioResult{Scenario: sc.Name, Policy: policy, Seed: seed, Measure: measure, Result: res}, nil
}

// ScenarioCapacity is the fleet's saturated request rate on sc's workload
// at nominal speed (Capacity per GPU type, summed), from n requests.
func ScenarioCapacity(sc Scenario, seed uint64, n int) float64 {
	memo := map[string]float64{}
	total := 0.0
	for _, sp := range sc.Fleet {
		c, ok := memo[sp.Name]
		if !ok {
			c = Capacity(sp, sc.Work, sc.Caching, seed, n)
			memo[sp.Name] = c
		}
		total += c
	}
	return total
}
