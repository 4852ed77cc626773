package sim

import (
	"testing"
)

// shortScenario scales sc down for the regression test: a 20 s warm-up
// and a 150 s window, changes moved to 15 s and 135 s into it.
func shortScenario(sc Scenario) Scenario {
	out := sc
	out.Changes = nil
	for i, ch := range sc.Changes {
		ch.At = []float64{15, 135}[min(i, 1)]
		out.Changes = append(out.Changes, ch)
	}
	return out
}

func runShort(t *testing.T, sc Scenario, policy string, seed uint64, capacity float64) ScenarioResult {
	t.Helper()
	return runWindow(t, sc, policy, seed, capacity, 20)
}

// runWindow is runShort with the given warm-up: the prefix shapes need
// the scenario's own minute for the caches to fill, as in the benchmark.
func runWindow(t *testing.T, sc Scenario, policy string, seed uint64, capacity, warmup float64) ScenarioResult {
	t.Helper()
	var precise *PreciseIndex
	if policy == "llmd-precise" || policy == "infergate-kv" {
		precise = NewPreciseIndex()
	}
	p, err := NewScenarioPolicy(policy, sc, seed, precise)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Specs: sc.Fleet, Workload: sc.Work, RequestRate: ScenarioLoad * capacity, PrefixCaching: sc.Caching,
		Seed: seed, Warmup: warmup, Measure: 150, TTFTTimeout: ScenarioTimeout}
	if precise != nil {
		cfg.Shadow = precise
	}
	for _, ch := range sc.Changes {
		ch.At += cfg.Warmup
		cfg.Changes = append(cfg.Changes, ch)
	}
	res, err := Run(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	return ScenarioResult{Scenario: sc.Name, Policy: policy, Seed: seed, Result: res}
}

func scenarioNamed(t *testing.T, name string) Scenario {
	t.Helper()
	for _, sc := range Scenarios() {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return Scenario{}
}

// The headline comparisons of the scenario benchmark, scaled down to
// seconds and held at a fixed seed: on a fleet where one GPU slows to
// 60%, infergate's picker keeps p99 TTFT below the best static
// capacity-weighted policy and 20% below the Inference Extension's scorer
// set; where one fails and returns, below the IE's; with bursts of long
// prompts or a heavy tenant, well below both; where load does not change
// it is no worse than static weights; on the IE's prefix shape it is no
// worse than the IE's scorer set on p50 or p99; on llm-d's long shared
// prompts, given the same event-fed index, its p90 is at most llm-d's
// precise scorer's at the same tokens/s.
func TestHeadlineComparisons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dozen short simulations")
	}
	const seed = 1
	warmup := 20.0
	run := func(sc Scenario, capacity float64, policies ...string) map[string]ScenarioResult {
		out := map[string]ScenarioResult{}
		for _, p := range policies {
			r := runWindow(t, sc, p, seed, capacity, warmup)
			out[p] = r
			t.Logf("%s %s: p50 %.1f ms p90 %.1f ms p99 %.1f ms tokens/s %.0f timeouts %.4f", sc.Name, p, r.P50TTFT*1000, r.P90TTFT*1000, r.P99TTFT*1000, r.TokensPerSec, r.Timeouts)
		}
		return out
	}
	p99 := func(sc Scenario, capacity float64, policies ...string) map[string]float64 {
		out := map[string]float64{}
		for p, r := range run(sc, capacity, policies...) {
			out[p] = r.P99TTFT
		}
		return out
	}
	throttle := shortScenario(scenarioNamed(t, "throttle"))
	got := p99(throttle, ScenarioCapacity(throttle, seed, 1000), "infergate", "static-maglev", "static-wrr", "ie-epp")
	// At this scale the throttled period is too short for the static
	// policies' queue to build as it does over the benchmark's window
	// (where the margin is far over 30%); the test holds the order.
	static := min(got["static-maglev"], got["static-wrr"])
	if got["infergate"] >= static {
		t.Errorf("throttle: infergate p99 %.0f ms, not below static's %.0f ms", got["infergate"]*1000, static*1000)
	}
	// The goal against the IE scorer set on changing load: p99
	// at least 20% below.
	if got["infergate"] > 0.8*got["ie-epp"] {
		t.Errorf("throttle: infergate p99 %.0f ms, not 20%% below the IE scorer set's %.0f ms", got["infergate"]*1000, got["ie-epp"]*1000)
	}

	steady := shortScenario(scenarioNamed(t, "steady"))
	got = p99(steady, ScenarioCapacity(steady, seed, 1000), "infergate", "static-maglev", "static-wrr")
	if static := min(got["static-maglev"], got["static-wrr"]); got["infergate"] > static {
		t.Errorf("steady: infergate p99 %.0f ms above static's %.0f ms", got["infergate"]*1000, static*1000)
	}

	// A GPU that fails: the gateway's passive failure marking takes it
	// out at the resets of its open requests, the pending prompt tokens
	// balance the three left. Below the IE scorer set's p99 (403 against
	// 1403 ms at seed 1); not below static weighted round robin's at this
	// scale (336 ms), and at full scale only 14% below it (BENCHMARKS.md).
	fail := shortScenario(scenarioNamed(t, "fail"))
	got = p99(fail, ScenarioCapacity(fail, seed, 1000), "infergate", "ie-epp")
	if got["infergate"] >= got["ie-epp"] {
		t.Errorf("fail: infergate p99 %.0f ms, not below the IE scorer set's %.0f ms", got["infergate"]*1000, got["ie-epp"]*1000)
	}

	// Bursts of 32k-token prompts and a heavy tenant beside light ones:
	// the pending prompt tokens show the prefill queue the in-flight
	// count misses.
	long := shortScenario(scenarioNamed(t, "long-bursts"))
	got = p99(long, ScenarioCapacity(long, seed, 1000), "infergate", "static-maglev", "static-wrr", "ie-epp")
	// At this scale (a 20 s warm-up) every policy is far behind; the
	// test holds a 20% margin on p99 over both (25% and 29% at seed 1:
	// 22.5 s; l7/pick's short lane gives way here, where the fleet is
	// overloaded throughout, and p99 was 21.3 s without it).
	if static := min(got["static-maglev"], got["static-wrr"]); got["infergate"] >= 0.8*static || got["infergate"] >= 0.8*got["ie-epp"] {
		t.Errorf("long-bursts: infergate p99 %.0f ms, not 20%% below static's %.0f ms and the IE scorer set's %.0f ms",
			got["infergate"]*1000, static*1000, got["ie-epp"]*1000)
	}

	heavy := shortScenario(scenarioNamed(t, "heavy-tenant"))
	got = p99(heavy, ScenarioCapacity(heavy, seed, 1000), "infergate", "static-maglev", "static-wrr", "ie-epp")
	if static := min(got["static-maglev"], got["static-wrr"]); got["infergate"] >= 0.85*static || got["infergate"] >= 0.8*got["ie-epp"] {
		t.Errorf("heavy-tenant: infergate p99 %.0f ms, not 15%% below static's %.0f ms and 20%% below the IE scorer set's %.0f ms",
			got["infergate"]*1000, static*1000, got["ie-epp"]*1000)
	}

	// The Inference Extension's prefix benchmark shape: never worse than
	// its scorer set on p50 or p99.
	warmup = ScenarioWarmup
	ie := scenarioNamed(t, "ie-prefix")
	res := run(ie, ScenarioCapacity(ie, seed, 1000), "infergate", "ie-epp")
	if a, b := res["infergate"], res["ie-epp"]; a.P50TTFT > b.P50TTFT || a.P99TTFT > b.P99TTFT {
		t.Errorf("ie-prefix: infergate p50/p99 %.1f/%.1f ms, the IE scorer set's %.1f/%.1f ms",
			a.P50TTFT*1000, a.P99TTFT*1000, b.P50TTFT*1000, b.P99TTFT*1000)
	}

	// llm-d's long shared prompts: on the same event-fed index, p90 TTFT
	// at most llm-d's precise scorer's, tokens/s no lower (the offered
	// load is the same, so tokens/s differ only by what is still in
	// flight when the window closes: within 0.1%).
	llmd := scenarioNamed(t, "llmd-prefix")
	res = run(llmd, ScenarioCapacity(llmd, seed, 1000), "infergate-kv", "llmd-precise")
	if a, b := res["infergate-kv"], res["llmd-precise"]; a.P90TTFT > b.P90TTFT || a.TokensPerSec < 0.999*b.TokensPerSec {
		t.Errorf("llmd-prefix: infergate-kv p90 %.1f ms, tokens/s %.0f; llm-d's precise scorer %.1f ms, %.0f",
			a.P90TTFT*1000, a.TokensPerSec, b.P90TTFT*1000, b.TokensPerSec)
	}
}
