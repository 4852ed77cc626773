// Command sched is issue 6's scheduling-quality benchmark: a discrete-event
// simulation of a mixed GPU fleet (package sim) under the gpu policy (real
// gpu/score weights feeding the real Maglev builder, connections sticky),
// round robin and least connections, and a shared-prefix workload with and
// without the real prefix-affinity chooser. `make bench-sched` runs it.
//
// Output: one line per policy and load,
//
//	policy=<p> load=<l> p50_ttft_ms=<x> p99_ttft_ms=<y> tokens_per_s=<z>
//
// then the same prefixed with workload=shared-prefix. With -v, per-run
// detail (request shares per GPU, cache hit rate, rebuilds) goes to stderr.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
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
)

// shared is the shared-prefix workload the run uses (sim.SharedPrefix
// unless -prefixes changes it).
var shared = sim.SharedPrefix

// loads are the fractions of fleet capacity issue 6 asks for.
var loads = []float64{0.50, 0.80, 0.95}

// fleet: two fast and two slow GPUs serving the same model.
var fleet = []sim.Spec{sim.H100, sim.H100, sim.A10, sim.A10}

type run struct {
	workload string
	policy   string
	load     float64
	res      sim.Result
	rebuilds int
	err      error
}

func main() {
	seed := flag.Uint64("seed", defaultSeed, "random seed (arrivals, lengths, flow hashes)")
	measure := flag.Float64("measure", sim.DefaultMeasure, "simulated seconds measured per run")
	verbose := flag.Bool("v", false, "per-run detail on stderr")
	minWeight := flag.Uint("min-weight", 0, "gpu/score MinWeight for the gpu policies (0: the package default)")
	prefixes := flag.Int("prefixes", 0, "distinct system prompts in the shared-prefix workload, for sensitivity runs (0: the workload's own)")
	flag.Parse()
	if *prefixes < 0 || *prefixes > maxPrefixesFlag {
		fmt.Fprintf(os.Stderr, "sched: -prefixes must be in [0, %d]\n", maxPrefixesFlag)
		os.Exit(2)
	}
	if *prefixes > 0 {
		shared.Prefixes = *prefixes
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
	scoreCfg := score.Config{MinWeight: uint32(*minWeight)}
	if err := bench(os.Stdout, diag, *seed, *measure, scoreCfg); err != nil {
		fmt.Fprintln(os.Stderr, "sched:", err)
		os.Exit(1)
	}
}

func fleetCapacity(w sim.Workload, caching bool, seed uint64) (float64, []float64) {
	var total float64
	per := make([]float64, len(fleet))
	memo := map[string]float64{}
	for i, sp := range fleet {
		c, ok := memo[sp.Name]
		if !ok {
			c = sim.Capacity(sp, w, caching, seed, calibrationRequests)
			memo[sp.Name] = c
		}
		per[i] = c
		total += c
	}
	return total, per
}

func newPolicy(name string, names []string, cfg score.Config) (sim.Policy, error) {
	switch name {
	case "gpu":
		return sim.NewGPU(names, cfg)
	case "gpu-prefix":
		return sim.NewGPUPrefix(names, cfg)
	case "gpu-l7":
		p, err := sim.NewGPUPrefix(names, cfg)
		if err == nil {
			p.Blind = true
		}
		return p, err
	case "round-robin":
		return &sim.RoundRobin{}, nil
	case "least-conn":
		return &sim.LeastConn{}, nil
	}
	return nil, fmt.Errorf("unknown policy %q", name)
}

func bench(out, diag io.Writer, seed uint64, measure float64, scoreCfg score.Config) error {
	chatCap, chatPer := fleetCapacity(sim.Chat, false, seed)
	prefCap, prefPer := fleetCapacity(shared, true, seed)
	fmt.Fprintf(diag, "capacity req/s: chat fleet %.2f %v; shared-prefix fleet %.2f %v\n", chatCap, chatPer, prefCap, prefPer)

	var runs []*run
	for _, l := range loads {
		for _, p := range []string{"gpu", "round-robin", "least-conn"} {
			runs = append(runs, &run{workload: "chat", policy: p, load: l})
		}
	}
	for _, l := range loads {
		// gpu-l7 (per-request routing, no affinity) goes to -v output only:
		// it separates what affinity buys from what per-request routing
		// buys, but is not one of the benchmark's reported policies.
		for _, p := range []string{"gpu", "gpu-prefix", "gpu-l7"} {
			runs = append(runs, &run{workload: "shared-prefix", policy: p, load: l})
		}
	}
	names := sim.BackendNames(fleet)
	work := make(chan *run)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				p, err := newPolicy(r.policy, names, scoreCfg)
				if err != nil {
					r.err = err
					continue
				}
				cfg := sim.Config{Specs: fleet, Workload: sim.Chat, RequestRate: r.load * chatCap, Seed: seed, Measure: measure}
				if r.workload == "shared-prefix" {
					cfg.Workload, cfg.RequestRate, cfg.PrefixCaching = shared, r.load*prefCap, true
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
			return fmt.Errorf("%s %s load %.2f: %w", r.workload, r.policy, r.load, r.err)
		}
		prefix := ""
		if r.workload != "chat" {
			prefix = "workload=" + r.workload + " "
		}
		w := out
		if r.policy == "gpu-l7" {
			w = diag
		}
		fmt.Fprintf(w, "%spolicy=%s load=%.2f p50_ttft_ms=%.1f p99_ttft_ms=%.1f tokens_per_s=%.0f\n",
			prefix, r.policy, r.load, r.res.P50TTFT*1000, r.res.P99TTFT*1000, r.res.TokensPerSec)
		fmt.Fprintf(diag, "  share=%.3f p99_by_gpu_s=%.2f hit=%.3f rebuilds=%d requests=%d\n",
			r.res.Share, r.res.P99ByGPU, r.res.HitRate, r.rebuilds, len(r.res.Requests))
	}
	return nil
}
