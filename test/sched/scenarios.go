package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/infergate/infergate/test/sched/sim"
)

// scenarioJob is one run of the scenario comparison.
type scenarioJob struct {
	sc      sim.Scenario
	policy  string
	seed    uint64
	measure float64
	res     sim.ScenarioResult
	err     error
}

// unstableCheck are the policies also run at twice the window, to see
// whether their tail grows with the run's length.
var unstableCheck = []string{"round-robin", "least-conn"}

// runScenarios runs every scenario and policy at each seed (and the
// unstable check), calibration n requests per GPU type, and returns the
// results.
func runScenarios(scs []sim.Scenario, policies []string, seeds []uint64, measure float64, n int) ([]*scenarioJob, error) {
	var jobs []*scenarioJob
	capacity := map[string]float64{}
	for _, sc := range scs {
		for _, seed := range seeds {
			capacity[fmt.Sprint(sc.Name, seed)] = sim.ScenarioCapacity(sc, seed, n)
			for _, p := range policies {
				jobs = append(jobs, &scenarioJob{sc: sc, policy: p, seed: seed, measure: measure})
				for _, u := range unstableCheck {
					if u == p {
						jobs = append(jobs, &scenarioJob{sc: sc, policy: p, seed: seed, measure: 2 * measure})
					}
				}
			}
		}
	}
	work := make(chan *scenarioJob)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				j.res, j.err = sim.RunScenario(j.sc, j.policy, j.seed, capacity[fmt.Sprint(j.sc.Name, j.seed)], j.measure)
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	for _, j := range jobs {
		if j.err != nil {
			return nil, j.err
		}
	}
	return jobs, nil
}

// printScenarios writes one line per run, then a summary: per scenario
// and policy, p50/p90/p99 TTFT and tokens/s as the median over seeds,
// the worst seed's p99, and flags.
func printScenarios(out io.Writer, jobs []*scenarioJob, measure float64) {
	for _, j := range jobs {
		r := j.res
		fmt.Fprintf(out, "scenario=%s policy=%s seed=%d window_s=%.0f p50_ttft_ms=%.1f p90_ttft_ms=%.1f p99_ttft_ms=%.1f tokens_per_s=%.0f timeouts=%.4f retried=%.4f failed=%.4f hit=%.3f\n",
			r.Scenario, r.Policy, r.Seed, r.Measure, r.P50TTFT*1000, r.P90TTFT*1000, r.P99TTFT*1000, r.TokensPerSec, r.Timeouts, r.Retried, r.Failed, r.HitRate)
	}
	type key struct{ sc, p string }
	by := map[key][]sim.ScenarioResult{}
	long := map[key][]sim.ScenarioResult{}
	var order []key
	for _, j := range jobs {
		k := key{j.sc.Name, j.policy}
		if j.measure != measure {
			long[k] = append(long[k], j.res)
			continue
		}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], j.res)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| scenario | policy | p50 ms | p90 ms | p99 ms | p99 worst seed | tokens/s | timeouts | note |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		rs := by[k]
		p99s := pick(rs, func(r sim.ScenarioResult) float64 { return r.P99TTFT })
		note := ""
		if ls := long[k]; len(ls) > 0 {
			lp := median(pick(ls, func(r sim.ScenarioResult) float64 { return r.P99TTFT }))
			if lp > 1.1*median(p99s) {
				note = fmt.Sprintf("unstable: p99 %.0f ms at %.0f s window", lp*1000, 2*measure)
			} else {
				note = fmt.Sprintf("p99 %.0f ms at %.0f s window", lp*1000, 2*measure)
			}
		}
		fmt.Fprintf(out, "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.0f | %.4f | %s |\n", k.sc, k.p,
			median(pick(rs, func(r sim.ScenarioResult) float64 { return r.P50TTFT }))*1000,
			median(pick(rs, func(r sim.ScenarioResult) float64 { return r.P90TTFT }))*1000,
			median(p99s)*1000, maxOf(p99s)*1000,
			median(pick(rs, func(r sim.ScenarioResult) float64 { return r.TokensPerSec })),
			median(pick(rs, func(r sim.ScenarioResult) float64 { return r.Timeouts })), note)
	}
}

func pick(rs []sim.ScenarioResult, f func(sim.ScenarioResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// scenarioMain is the -scenarios mode.
func scenarioMain(seedList, only, policyList string) error {
	policies := sim.ScenarioPolicies
	if policyList != "" {
		policies = nil
		for _, f := range strings.Split(policyList, ",") {
			if !slices.Contains(sim.ScenarioPolicies, f) {
				return fmt.Errorf("-policies: unknown policy %q", f)
			}
			policies = append(policies, f)
		}
	}
	var seeds []uint64
	for _, f := range strings.Split(seedList, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return fmt.Errorf("-seeds: %w", err)
		}
		seeds = append(seeds, v)
	}
	if len(seeds) == 0 || len(seeds) > 100 {
		return fmt.Errorf("-seeds: want 1 to 100 seeds")
	}
	var scs []sim.Scenario
	for _, sc := range sim.Scenarios() {
		if only == "" || sc.Name == only {
			scs = append(scs, sc)
		}
	}
	if len(scs) == 0 {
		return fmt.Errorf("-scenario %q: no such scenario", only)
	}
	jobs, err := runScenarios(scs, policies, seeds, sim.ScenarioMeasure, calibrationRequests)
	if err != nil {
		return err
	}
	printScenarios(os.Stdout, jobs, sim.ScenarioMeasure)
	return nil
}
