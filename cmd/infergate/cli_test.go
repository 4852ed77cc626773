package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/api/apitest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

const (
	goodPolicy = "../../policy/testdata/good/full.yaml"
	badPolicy  = "../../policy/testdata/bad/port-out-of-range.yaml"
)

type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the CLI in-process as main does, against socket.
func runCLI(t *testing.T, socket, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"--socket", socket}, args...))
	code := exitOK
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(&errOut, "error:", err)
		code = exitCode(err)
	}
	return result{out.String(), errOut.String(), code}
}

// golden compares a run with testdata/golden/<name>.golden (-update
// rewrites); the socket's temporary path reads $SOCKET there.
func golden(t *testing.T, name, socket string, r result) {
	t.Helper()
	got := fmt.Sprintf("%s--- stderr ---\n%s--- exit %d ---\n", r.stdout, r.stderr, r.code)
	got = strings.ReplaceAll(got, socket, "$SOCKET")
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/infergate -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got ---\n%s--- want ---\n%s", name, path, got, want)
	}
}

func fixtureBackends() []api.Backend {
	return []api.Backend{
		{Pool: "gpu-a", Name: "gpu-a-1", Address: "198.18.1.1", Port: 8000, ConfiguredWeight: 100, Weight: 140, State: "active", Healthy: true,
			Load: &api.Load{KVCacheUsage: 0.31, Running: 4, Waiting: 0, GPUUtil: 0.62}, Packets: 123456, Bytes: 98765432, NewFlows: 321,
			L7: &api.BackendL7{Requests: 1000, PromptTokens: 50000, CompletionTokens: 150000, TTFTSecondsSum: 120, TTFTCount: 1000}},
		{Pool: "gpu-a", Name: "gpu-a-2", Address: "198.18.1.2", Port: 8000, ConfiguredWeight: 100, Weight: 60, State: "active", Healthy: true,
			Load: &api.Load{KVCacheUsage: 0.88, Running: 12, Waiting: 5, GPUUtil: 0.97, Stale: true}, Packets: 65432, Bytes: 4321000, NewFlows: 120},
		{Pool: "gpu-a", Name: "gpu-a-3", Address: "198.18.1.3", Port: 8000, ConfiguredWeight: 0, Weight: 0, State: "draining", Healthy: false},
		{Pool: "gpu-b", Name: "gpu-b-1", Address: "2001:db8::21", Port: 8000, ConfiguredWeight: 50, Weight: 50, State: "active", Healthy: true},
	}
}

func fixtureStats() api.Stats {
	return api.Stats{
		Verdicts: map[string]uint64{"pass": 1000, "tx": 5000, "drop": 42},
		Drops:    map[string]uint64{"firewall": 30, "rate_limit": 10, "malformed": 2},
		VIPs:     []api.VIPStats{{Name: "inference", Packets: 5000, Bytes: 3 << 20, NewFlows: 77}},
		Maps:     []api.MapStats{{Name: "conntrack", Entries: 1234, MaxEntries: 1 << 20}, {Name: "backends", Entries: 4, MaxEntries: 4096}},
	}
}

// TestCLIGolden walks the CLI through a session against a fake agent and
// compares table and JSON/YAML output with golden files.
func TestCLIGolden(t *testing.T) {
	a := apitest.Start(t)
	a.SetBackends(fixtureBackends())
	a.SetStats(fixtureStats())
	a.SetStatus(api.Status{Version: "v0.1.0-test", Role: "balancer", StartedAt: a.StartedAt(),
		Interfaces: []api.Interface{{Name: "ig-lb0", Program: "balancer", Mode: "native", Attached: true}, {Name: "ig-gpu0", Program: "decap", Mode: "generic", Attached: false}},
		Reconciles: 7, ReconcileErrors: 1, LastError: "neighbour 198.18.1.9 unresolved"})
	good, err := os.ReadFile(goodPolicy)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(good), "weight: 50", "weight: 75", 1)
	s := a.Socket

	steps := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"validate-good", "", []string{"policy", "validate", "-f", goodPolicy}},
		{"validate-good-json", "", []string{"policy", "validate", "-f", goodPolicy, "-o", "json"}},
		{"validate-bad", "", []string{"policy", "validate", "-f", badPolicy}},
		{"validate-bad-json", "", []string{"policy", "validate", "-f", badPolicy, "-o", "json"}},
		{"get-none", "", []string{"policy", "get"}},
		{"apply-dry-run", "", []string{"policy", "apply", "-f", goodPolicy, "--dry-run"}},
		{"apply", "", []string{"policy", "apply", "-f", goodPolicy}},
		{"apply-unchanged-json", "", []string{"policy", "apply", "-f", goodPolicy, "-o", "json"}},
		{"apply-invalid", "", []string{"policy", "apply", "-f", badPolicy}},
		{"diff", changed, []string{"policy", "diff", "-f", "-"}},
		{"apply-stdin", changed, []string{"policy", "apply", "-f", "-"}},
		{"diff-json", strings.Replace(changed, "weight: 75", "weight: 80", 1), []string{"policy", "diff", "-f", "-", "-o", "json", "--exit-code"}},
		{"diff-none", changed, []string{"policy", "diff", "-f", "-", "--exit-code"}},
		{"get", "", []string{"policy", "get"}},
		{"get-json", "", []string{"policy", "get", "-o", "json"}},
		{"history", "", []string{"policy", "history"}},
		{"history-yaml", "", []string{"policy", "history", "-o", "yaml"}},
		{"rollback", "", []string{"policy", "rollback"}},
		{"rollback-unknown", "", []string{"policy", "rollback", "ffffffffffffffff"}},
		{"status", "", []string{"status"}},
		{"status-json", "", []string{"status", "-o", "json"}},
		{"backends", "", []string{"backends"}},
		{"backends-json", "", []string{"backends", "-o", "json"}},
		{"backends-pool-yaml", "", []string{"backends", "--pool", "gpu-b", "-o", "yaml"}},
		{"stats", "", []string{"stats"}},
		{"stats-json", "", []string{"stats", "-o", "json"}},
		{"keys-create", "", []string{"keys", "create", "alice-ci", "--tenant", "alice"}},
		{"keys-create-json", "", []string{"keys", "create", "bob-ci", "--tenant", "bob", "-o", "json"}},
		{"keys-list", "", []string{"keys", "list"}},
		{"keys-list-json", "", []string{"keys", "list", "-o", "json"}},
		{"keys-revoke", "", []string{"keys", "revoke", "alice-ci"}},
		{"keys-revoke-missing", "", []string{"keys", "revoke", "alice-ci"}},
		{"keys-revoke-json", "", []string{"keys", "revoke", "bob-ci", "-o", "json"}},
		{"delete", "", []string{"policy", "delete"}},
		{"delete-again", "", []string{"policy", "delete"}},
		{"bad-output", "", []string{"status", "-o", "xml"}},
	}
	for _, st := range steps {
		before := a.Requests()
		r := runCLI(t, s, st.stdin, st.args...)
		golden(t, st.name, s, r)
		if st.name == "apply-invalid" && a.Requests() != before {
			t.Errorf("an invalid document reached the agent")
		}
	}
}

// TestNoAgent: every command that needs the agent says so, with exit code 4.
func TestNoAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	for _, args := range [][]string{
		{"status"}, {"backends"}, {"stats"}, {"policy", "get"}, {"policy", "history"},
		{"policy", "apply", "-f", goodPolicy}, {"policy", "rollback"}, {"keys", "list"}, {"top"},
	} {
		r := runCLI(t, sock, "", args...)
		want := "error: agent not running: no socket at " + sock
		if r.code != exitUnavailable || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	// validate works offline.
	if r := runCLI(t, sock, "", "policy", "validate", "-f", goodPolicy); r.code != exitOK {
		t.Errorf("offline validate: %+v", r)
	}
	golden(t, "no-agent", sock, runCLI(t, sock, "", "status"))
}

func TestCompletionAndSchema(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, "/nonexistent", "", "completion", sh)
		if r.code != exitOK || !strings.Contains(r.stdout, "infergate") || len(r.stdout) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, r.code, len(r.stdout))
		}
	}
	r := runCLI(t, "/nonexistent", "", "policy", "schema")
	want, err := os.ReadFile("../../policy/schema.json")
	if err != nil || r.stdout != string(want) {
		t.Errorf("policy schema does not print policy/schema.json (%v)", err)
	}
}

// TestUsageExitCodes: bad flags and arguments exit with 2.
func TestUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--bogus"},
		{"status", "extra"},
		{"keys", "create"},
		{"keys", "create", "k"},
		{"policy", "validate"},
		{"policy", "rollback", "a", "b"},
		{"top", "--interval", "1ms"},
		{"completion", "tcsh"},
	} {
		if r := runCLI(t, "/nonexistent", "", args...); r.code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, r.code, r.stderr, exitUsage)
		}
	}
}
