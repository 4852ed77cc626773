package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/infergate/infergate/test/sched/sim"
)

// The output is the benchmark's format, one line per policy and load, nothing
// else on stdout.
func TestOutputFormat(t *testing.T) {
	var out bytes.Buffer
	if err := bench(&out, io.Discard, benchWorkloads(sim.SharedPrefix), options{seed: 7, measure: 30, calibration: 300}); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^(workload=(?:shared-prefix|trace-b|gie-high-cache) )?policy=(gpu|round-robin|least-conn|gpu-prefix) load=(0\.50|0\.80|0\.95) p50_ttft_ms=[0-9]+\.[0-9] p99_ttft_ms=[0-9]+\.[0-9] tokens_per_s=[0-9]+$`)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 27 {
		t.Fatalf("%d lines, want 9 + 6 + 6 + 6:\n%s", len(lines), out.String())
	}
	seen := map[string]bool{}
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q not in the benchmark's format", l)
		}
		key := m[1] + m[2] + m[3]
		if seen[key] {
			t.Fatalf("duplicate line for %s", key)
		}
		seen[key] = true
		shared := m[1] != ""
		if shared && m[2] != "gpu" && m[2] != "gpu-prefix" || !shared && m[2] == "gpu-prefix" {
			t.Fatalf("policy %s in the wrong workload: %q", m[2], l)
		}
	}
}

// -workload restricts the run, and -v's control policies go to the
// diagnostic stream only.
func TestOnlyOneWorkloadAndControls(t *testing.T) {
	var out, diag bytes.Buffer
	o := options{seed: 3, measure: 20, calibration: 200, only: "trace-b", controls: true}
	if err := bench(&out, &diag, benchWorkloads(sim.SharedPrefix), o); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "workload=trace-b policy=gpu") || strings.Contains(l, "gpu-l7") {
			t.Fatalf("line %q outside the chosen workload or a control on stdout", l)
		}
	}
	for _, c := range []string{"gpu-l7", "oracle-cache", "oracle-prefix", "oracle-jsq"} {
		if strings.Contains(out.String(), c) {
			t.Fatalf("control %s on stdout:\n%s", c, out.String())
		}
		if n := strings.Count(diag.String(), "workload=trace-b policy="+c+" "); n != 3 {
			t.Fatalf("%d %s lines on the diagnostic stream, want 3:\n%s", n, c, diag.String())
		}
	}
	// Each oracle run reports its TTFT floor and busy fractions.
	if n := strings.Count(diag.String(), "p50_floor_ttft_ms="); n != 9 {
		t.Fatalf("%d floor lines, want 9:\n%s", n, diag.String())
	}
}
