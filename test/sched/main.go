// Command sched is the scheduling-quality benchmark: a discrete-event
// simulation of a mixed GPU fleet (package sim) under the gpu policy (real
// gpu/score weights feeding the real Maglev builder, connections sticky),
// round robin and least connections, and two workloads with shared system
// prompts, with and without the real prefix-affinity chooser. `make
// bench-sched` runs it.
//
// Output: one line per policy and load,
//
//	policy=<p> load=<l> p50_ttft_ms=<x> p99_ttft_ms=<y> tokens_per_s=<z>
//
// for the chat workload, then the same prefixed with workload=shared-prefix
// (a few long system prompts shared by most requests of many
// clients, sim.SharedPrefix) and workload=trace-b (prefix reuse as in a
// published business-API trace, sim.TraceB) for policies gpu and
// gpu-prefix, and workload=gie-high-cache (the Gateway API Inference
// Extension's published prefix-cache benchmark, sim.GIEHighCache). With
// -v, per-run detail (request shares per GPU, cache hit rate, rebuilds)
// and the control runs go to stderr: gpu-l7, and the oracle-cache,
// oracle-prefix and oracle-jsq bounds (see benchWorkloads).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/test/sched/sim"
)

// Benchmark settings.
const (
	// calibrationRequests: backlog size for measuring an engine's
	// saturated throughput.
	calibrationRequests = 3000
	// defaultSeed is what `make bench-sched` passes; any uint64 is valid.
	defaultSeed = 1
	// maxPrefixesFlag bounds -prefixes.
	maxPrefixesFlag = 100_000
	// maxPrefixTokensFlag bounds -prefix-tokens; the workload's own
	// validation then checks that the longest request fits every GPU.
	maxPrefixTokensFlag = 1 << 20
)

// workload is one traffic shape of the benchmark and the policies it is
// reported for.
type workload struct {
	name    string // "" for the chat workload, whose lines carry no prefix
	w       sim.Workload
	caching bool
	// policies are printed on stdout; controls only with -v.
	policies, controls []string
}

// benchWorkloads are the workloads a run reports, in output order. The
// flags -prefixes and -prefix-tokens change the shared-prefix one.
func benchWorkloads(shared sim.Workload) []workload {
	return []workload{
		{name: "", w: sim.Chat, policies: []string{"gpu", "round-robin", "least-conn"}},
		// gpu-l7 (per-request routing, no affinity) separates what
		// affinity buys from what per-request routing buys, but is not
		// one of the benchmark's reported policies. oracle-cache and
		// oracle-prefix route as gpu-l7 and gpu-prefix, with an infinite
		// free prefix cache on every GPU (sim.Config.OracleCache): no
		// router gets more or cheaper shared-prefix hits than that, so
		// the lower of their TTFTs bounds what affinity can buy with
		// either routing. oracle-jsq adds the cache to an idealised
		// join-the-shortest-queue router that knows every GPU's true
		// capacity (sim.LeastWork), to see whether better balance
		// than the real routers' would lower the bound. Each also
		// reports sim.FloorTTFT's median.
		{name: "shared-prefix", w: shared, caching: true, policies: []string{"gpu", "gpu-prefix"}, controls: []string{"gpu-l7", "oracle-cache", "oracle-prefix", "oracle-jsq"}},
		{name: "trace-b", w: sim.TraceB, caching: true, policies: []string{"gpu", "gpu-prefix"}, controls: []string{"gpu-l7", "oracle-cache", "oracle-prefix", "oracle-jsq"}},
		// The peer's own benchmark of prefix-aware routing (sim.GIEHighCache).
		{name: "gie-high-cache", w: sim.GIEHighCache, caching: true, policies: []string{"gpu", "gpu-prefix"}, controls: []string{"gpu-l7", "oracle-cache", "oracle-prefix", "oracle-jsq"}},
	}
}

// loads are the fractions of fleet capacity the benchmark measures at.
var loads = []float64{0.50, 0.80, 0.95}

// fleet: two fast and two slow GPUs serving the same model.
var fleet = []sim.Spec{sim.H100, sim.H100, sim.A10, sim.A10}

type run struct {
	wl       *workload
	policy   string
	load     float64
	control  bool
	res      sim.Result
	rebuilds int
	err      error
}

// options are what the flags set.
type options struct {
	seed     uint64
	measure  float64
	scoreCfg score.Config
	// only, if not empty, restricts the run to one workload ("chat" for
	// the chat workload).
	only string
	// controls also runs the -v control policies.
	controls bool
	// calibration is the backlog for capacity calibration (0:
	// calibrationRequests); tests of the output's shape use less.
	calibration int
}

func main() {
	seed := flag.Uint64("seed", defaultSeed, "random seed (arrivals, lengths, flow hashes)")
	measure := flag.Float64("measure", sim.DefaultMeasure, "simulated seconds measured per run")
	verbose := flag.Bool("v", false, "per-run detail and the gpu-l7 control runs on stderr")
	minWeight := flag.Uint("min-weight", 0, "gpu/score MinWeight for the gpu policies (0: the package default)")
	prefixes := flag.Int("prefixes", 0, "distinct system prompts in the shared-prefix workload, for sensitivity runs (0: the workload's own)")
	prefixTokens := flag.Int("prefix-tokens", 0, "median system-prompt length of the shared-prefix workload, for sensitivity runs; its clamps scale with it (0: the workload's own)")
	only := flag.String("workload", "", "run only this workload: chat, shared-prefix, trace-b or gie-high-cache (default all)")
	scenarios := flag.Bool("scenarios", false, "run the scenario comparison against the baselines instead (sim.Scenarios)")
	seeds := flag.String("seeds", "1,2,3", "with -scenarios: comma-separated seeds")
	scenario := flag.String("scenario", "", "with -scenarios: run only this scenario")
	policies := flag.String("policies", "", "with -scenarios: comma-separated policies (default all)")
	flag.Parse()
	if *scenarios {
		if err := scenarioMain(*seeds, *scenario, *policies); err != nil {
			fmt.Fprintln(os.Stderr, "sched:", err)
			os.Exit(1)
		}
		return
	}
	if *prefixes < 0 || *prefixes > maxPrefixesFlag {
		fmt.Fprintf(os.Stderr, "sched: -prefixes must be in [0, %d]\n", maxPrefixesFlag)
		os.Exit(2)
	}
	if *prefixTokens < 0 || *prefixTokens > maxPrefixTokensFlag {
		fmt.Fprintf(os.Stderr, "sched: -prefix-tokens must be in [0, %d]\n", maxPrefixTokensFlag)
		os.Exit(2)
	}
	if !slices.Contains([]string{"", "chat", "shared-prefix", "trace-b", "gie-high-cache"}, *only) {
		fmt.Fprintln(os.Stderr, "sched: -workload must be chat, shared-prefix, trace-b or gie-high-cache")
		os.Exit(2)
	}
	shared := sim.SharedPrefix
	if *prefixes > 0 {
		shared.Prefixes = *prefixes
	}
	if *prefixTokens > 0 {
		// Keep the workload's spread: the clamps move with the median.
		f := float64(*prefixTokens) / shared.PrefixMedian
		shared.PrefixMedian = float64(*prefixTokens)
		shared.MinPrefix = max(int(float64(shared.MinPrefix)*f), 256)
		shared.MaxPrefix = max(int(float64(shared.MaxPrefix)*f), shared.MinPrefix)
	}
	if !(*measure > 0 && *measure <= 86400) {
		fmt.Fprintln(os.Stderr, "sched: -measure must be in (0, 86400]")
		os.Exit(2)
	}
	var diag io.Writer = io.Discard
	if *verbose {
		diag = os.Stderr
	}
	if *minWeight > score.DefaultMaxWeight {
		fmt.Fprintln(os.Stderr, "sched: -min-weight above the maximum weight")
		os.Exit(2)
	}
	opts := options{
		seed: *seed, measure: *measure, scoreCfg: score.Config{MinWeight: uint32(*minWeight)},
		only: *only, controls: *verbose,
	}
	if err := bench(os.Stdout, diag, benchWorkloads(shared), opts); err != nil {
		fmt.Fprintln(os.Stderr, "sched:", err)
		os.Exit(1)
	}
}

func fleetCapacity(w sim.Workload, caching bool, seed uint64, n int) (float64, []float64) {
	var total float64
	per := make([]float64, len(fleet))
	memo := map[string]float64{}
	for i, sp := range fleet {
		c, ok := memo[sp.Name]
		if !ok {
			c = sim.Capacity(sp, w, caching, seed, n)
			memo[sp.Name] = c
		}
		per[i] = c
		total += c
	}
	return total, per
}

// newPolicy returns the named policy; per is each backend's capacity.
func newPolicy(name string, names []string, per []float64, cfg score.Config) (sim.Policy, error) {
	switch name {
	case "gpu":
		return sim.NewGPU(names, cfg)
	case "gpu-prefix":
		return sim.NewGPUPrefix(names, cfg)
	case "gpu-l7", "oracle-cache":
		p, err := sim.NewGPUPrefix(names, cfg)
		if err == nil {
			p.Blind = true
		}
		return p, err
	case "oracle-prefix":
		return sim.NewGPUPrefix(names, cfg)
	case "oracle-jsq":
		return &sim.LeastWork{Capacity: per}, nil
	case "round-robin":
		return &sim.RoundRobin{}, nil
	case "least-conn":
		return &sim.LeastConn{}, nil
	}
	return nil, fmt.Errorf("unknown policy %q", name)
}

// oracle reports whether policy runs with an oracle cache.
func oracle(policy string) bool {
	return policy == "oracle-cache" || policy == "oracle-prefix" || policy == "oracle-jsq"
}

func bench(out, diag io.Writer, wls []workload, o options) error {
	var runs []*run
	for i := range wls {
		wl := &wls[i]
		if o.only != "" && o.only != wl.name && !(o.only == "chat" && wl.name == "") {
			continue
		}
		for _, l := range loads {
			for _, p := range wl.policies {
				runs = append(runs, &run{wl: wl, policy: p, load: l})
			}
			if o.controls {
				for _, p := range wl.controls {
					runs = append(runs, &run{wl: wl, policy: p, load: l, control: true})
				}
			}
		}
	}
	// Capacities first (one calibration per workload and GPU type), so
	// that loads are fractions of what this fleet can serve of each.
	capacity := map[*workload]float64{}
	perGPU := map[*workload][]float64{}
	for _, r := range runs {
		if _, ok := capacity[r.wl]; ok {
			continue
		}
		n := o.calibration
		if n == 0 {
			n = calibrationRequests
		}
		c, per := fleetCapacity(r.wl.w, r.wl.caching, o.seed, n)
		capacity[r.wl], perGPU[r.wl] = c, per
		name := r.wl.name
		if name == "" {
			name = "chat"
		}
		fmt.Fprintf(diag, "capacity req/s: %s fleet %.2f %v\n", name, c, per)
	}

	names := sim.BackendNames(fleet)
	work := make(chan *run)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				p, err := newPolicy(r.policy, names, perGPU[r.wl], o.scoreCfg)
				if err != nil {
					r.err = err
					continue
				}
				cfg := sim.Config{
					Specs: fleet, Workload: r.wl.w, RequestRate: r.load * capacity[r.wl],
					PrefixCaching: r.wl.caching, Seed: o.seed, Measure: o.measure,
					OracleCache: oracle(r.policy),
				}
				r.res, r.err = sim.Run(cfg, p)
				if g, ok := p.(*sim.GPU); ok {
					r.rebuilds = g.Rebuilds
				}
			}
		}()
	}
	for _, r := range runs {
		work <- r
	}
	close(work)
	wg.Wait()

	for _, r := range runs {
		if r.err != nil {
			return fmt.Errorf("%s %s load %.2f: %w", r.wl.name, r.policy, r.load, r.err)
		}
		prefix := ""
		if r.wl.name != "" {
			prefix = "workload=" + r.wl.name + " "
		}
		w := out
		if r.control {
			w = diag
		}
		fmt.Fprintf(w, "%spolicy=%s load=%.2f p50_ttft_ms=%.1f p99_ttft_ms=%.1f tokens_per_s=%.0f\n",
			prefix, r.policy, r.load, r.res.P50TTFT*1000, r.res.P99TTFT*1000, r.res.TokensPerSec)
		fmt.Fprintf(diag, "  share=%.3f p99_by_gpu_s=%.2f hit=%.3f shared_hit=%.3f rebuilds=%d requests=%d\n",
			r.res.Share, r.res.P99ByGPU, r.res.HitRate, r.res.SharedHitRate, r.rebuilds, len(r.res.Requests))
		if oracle(r.policy) {
			fmt.Fprintf(diag, "  p50_floor_ttft_ms=%.1f (alone on an idle GPU of the fastest type, oracle cache) busy=%.3f\n",
				r.res.P50FloorTTFT*1000, r.res.Busy)
		}
	}
	return nil
}
