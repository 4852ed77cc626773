package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/infergate/infergate/test/sched/sim"
)

// The output is issue 6's format, one line per policy and load, nothing
// else on stdout.
func TestOutputFormat(t *testing.T) {
	var out bytes.Buffer
	if err := bench(&out, io.Discard, benchWorkloads(sim.SharedPrefix), options{seed: 7, measure: 30}); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^(workload=(?:shared-prefix|trace-b) )?policy=(gpu|round-robin|least-conn|gpu-prefix) load=(0\.50|0\.80|0\.95) p50_ttft_ms=[0-9]+\.[0-9] p99_ttft_ms=[0-9]+\.[0-9] tokens_per_s=[0-9]+$`)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 21 {
		t.Fatalf("%d lines, want 9 + 6 + 6:\n%s", len(lines), out.String())
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
