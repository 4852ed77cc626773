// Package privtest gates tests that need root, the BPF syscall, network
// namespaces or an installed tool. Outside CI such a test skips with a reason;
// with INFERGATE_REQUIRE_PRIVILEGED=1 (set by .ci/run) a would-be skip fails,
// so nothing privileged is silently left untested.
package privtest

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether skips must become failures.
func Required() bool { return os.Getenv("INFERGATE_REQUIRE_PRIVILEGED") == "1" }

// Skip skips t, or fails it when privileged tests are required.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("INFERGATE_REQUIRE_PRIVILEGED=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Root requires uid 0.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Tools requires programs on PATH (redis-server, ip, ...).
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, "needs %s on PATH", n)
		}
	}
}
