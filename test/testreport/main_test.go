package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func run(t *testing.T, events ...event) (string, bool) {
	t.Helper()
	var out bytes.Buffer
	r := &report{out: &out, logs: map[key][]string{}}
	for _, e := range events {
		// Round-trip through JSON as go test -json would write it.
		b, _ := json.Marshal(e)
		var back event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		r.add(back)
	}
	failed := r.finish()
	return out.String(), failed
}

func TestSkipsListedWithReason(t *testing.T) {
	out, failed := run(t,
		event{Action: "run", Package: "p", Test: "TestA"},
		event{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
		event{Action: "output", Package: "p", Test: "TestA", Output: "    a_test.go:12: needs root\n"},
		event{Action: "output", Package: "p", Test: "TestA", Output: "--- SKIP: TestA (0.00s)\n"},
		event{Action: "skip", Package: "p", Test: "TestA"},
		event{Action: "run", Package: "p", Test: "TestB"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "noise that must not show\n"},
		event{Action: "pass", Package: "p", Test: "TestB"},
		event{Action: "output", Package: "p", Output: "ok  \tp\t0.1s\n"},
		event{Action: "pass", Package: "p"},
	)
	if failed {
		t.Fatal("a run with a skip and a pass reported failure")
	}
	for _, want := range []string{"ok  \tp\t0.1s", "Skipped tests (1):", "SKIP p TestA: needs root", "tests: 1 passed, 0 failed, 1 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "noise") {
		t.Errorf("a passing test's output was shown:\n%s", out)
	}
}

func TestFailureShownAndCounted(t *testing.T) {
	out, failed := run(t,
		event{Action: "output", Package: "p", Test: "TestC", Output: "    c_test.go:3: got 1, want 2\n"},
		event{Action: "fail", Package: "p", Test: "TestC"},
		event{Action: "output", Package: "p", Output: "FAIL\tp\t0.2s\n"},
		event{Action: "fail", Package: "p"},
	)
	if !failed {
		t.Fatal("a failing test did not fail the run")
	}
	if !strings.Contains(out, "got 1, want 2") || !strings.Contains(out, "tests: 0 passed, 1 failed, 0 skipped") {
		t.Errorf("failure not shown or counted:\n%s", out)
	}
}

func TestPackageCrashCounts(t *testing.T) {
	out, failed := run(t,
		event{Action: "output", Package: "p", Test: "TestD", Output: "panic: boom\n"},
		event{Action: "fail", Package: "p"},
	)
	if !failed || !strings.Contains(out, "panic: boom") || !strings.Contains(out, "1 failed") {
		t.Errorf("a package that crashed mid-test was not reported (failed=%v):\n%s", failed, out)
	}
}
