package monitoring

import (
	"os/exec"
	"reflect"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
)

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (status) (rate(gen_ai_server_request_duration_seconds_count{tenant=~"$tenant"}[$__rate_interval]))`: {"gen_ai_server_request_duration_seconds_count"},
		`max by (instance, map) (infergate_map_entries / infergate_map_max_entries) > 0.9`:                          {"infergate_map_entries", "infergate_map_max_entries"},
		`histogram_quantile(0.99, sum by (le, model) (rate(x_bucket{a="b c"}[5m]))) > 5`:                            {"x_bucket"},
		`increase(infergate_reconcile_errors_total[10m]) > 0 and on (instance) up == 1`:                             {"infergate_reconcile_errors_total", "up"},
	} {
		if got := MetricNames(expr); !reflect.DeepEqual(got, want) {
			t.Errorf("MetricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

func TestQueriesCoverDashboardAndAlerts(t *testing.T) {
	qs, err := Queries()
	if err != nil {
		t.Fatal(err)
	}
	var panels, alerts int
	for _, q := range qs {
		if len(MetricNames(q.Expr)) == 0 {
			t.Errorf("%s: no metric in %q", q.Source, q.Expr)
		}
		if q.Alert {
			alerts++
		} else {
			panels++
		}
	}
	// The dashboard shows what the product promises: requests, tokens,
	// TTFT and TPOT, cost, limits, inspection, XDP verdicts and drops,
	// backends, GPU weights and map fill.
	for _, metric := range []string{"gen_ai_server_request_duration_seconds_count", "gen_ai_client_token_usage_sum",
		"gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_server_time_per_output_token_seconds_bucket",
		"infergate_cost_usd_total", "infergate_limit_rejections_total", "infergate_inspection_matches_total",
		"infergate_xdp_packets_total", "infergate_xdp_drops_total", "infergate_backend_bytes_total",
		"infergate_backend_weight", "infergate_gpu_score_weight", "infergate_map_entries"} {
		found := false
		for _, q := range qs {
			for _, n := range MetricNames(q.Expr) {
				found = found || (!q.Alert && n == metric)
			}
		}
		if !found {
			t.Errorf("no dashboard panel shows %s", metric)
		}
	}
	if panels < 20 || alerts < 8 {
		t.Errorf("%d panel queries and %d alerts", panels, alerts)
	}
}

// TestPromtool checks the rule file and runs its unit tests.
func TestPromtool(t *testing.T) {
	privtest.Tools(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		out, err := exec.Command("promtool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
