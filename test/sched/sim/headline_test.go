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
	var precise *PreciseIndex
	if policy == "llmd-precise" || policy == "infergate-kv" {
		precise = NewPreciseIndex()
	}
	p, err := NewScenarioPolicy(policy, sc, seed, precise)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Specs: sc.Fleet, Workload: sc.Work, RequestRate: ScenarioLoad * capacity, PrefixCaching: sc.Caching,
		Seed: seed, Warmup: 20, Measure: 150, TTFTTimeout: ScenarioTimeout}
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
// 60%, or fails and returns, infergate's picker keeps p99 TTFT below the
// best static capacity-weighted policy and below the Inference
// Extension's scorer set, and with bursts of long prompts or a heavy
// tenant, well below both; where load does not change it is no worse
// than static weights.
func TestHeadlineComparisons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dozen short simulations")
	}
	const seed = 1
	p99 := func(sc Scenario, capacity float64, policies ...string) map[string]float64 {
		out := map[string]float64{}
		for _, p := range policies {
			r := runShort(t, sc, p, seed, capacity)
			out[p] = r.P99TTFT
			t.Logf("%s %s: p50 %.1f ms p99 %.1f ms tokens/s %.0f timeouts %.4f", sc.Name, p, r.P50TTFT*1000, r.P99TTFT*1000, r.TokensPerSec, r.Timeouts)
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
	if got["infergate"] >= got["ie-epp"] {
		t.Errorf("throttle: infergate p99 %.0f ms, not below the IE scorer set's %.0f ms", got["infergate"]*1000, got["ie-epp"]*1000)
	}

	steady := shortScenario(scenarioNamed(t, "steady"))
	got = p99(steady, ScenarioCapacity(steady, seed, 1000), "infergate", "static-maglev", "static-wrr")
	if static := min(got["static-maglev"], got["static-wrr"]); got["infergate"] > static {
		t.Errorf("steady: infergate p99 %.0f ms above static's %.0f ms", got["infergate"]*1000, static*1000)
	}

	// A GPU that fails: the gateway's passive failure marking takes it
	// out at the resets of its open requests, the pending prompt tokens
	// balance the three left.
	fail := shortScenario(scenarioNamed(t, "fail"))
	got = p99(fail, ScenarioCapacity(fail, seed, 1000), "infergate", "static-maglev", "static-wrr", "ie-epp")
	if static := min(got["static-maglev"], got["static-wrr"]); got["infergate"] >= static || got["infergate"] >= got["ie-epp"] {
		t.Errorf("fail: infergate p99 %.0f ms, not below static's %.0f ms and the IE scorer set's %.0f ms",
			got["infergate"]*1000, static*1000, got["ie-epp"]*1000)
	}

	// Bursts of 32k-token prompts and a heavy tenant beside light ones:
	// the pending prompt tokens show the prefill queue the in-flight
	// count misses.
	long := shortScenario(scenarioNamed(t, "long-bursts"))
	got = p99(long, ScenarioCapacity(long, seed, 1000), "infergate", "static-maglev", "static-wrr", "ie-epp")
	// At this scale (a 20 s warm-up) every policy is far behind; the
	// test holds a 20% margin on p99 over both (about 30% at seed 1).
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
}
