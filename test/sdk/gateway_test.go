package sdk_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testGateway is the shipped binary serving one test's policy.
type testGateway struct {
	listen string
	log    bytes.Buffer
	cmd    *exec.Cmd
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

var (
	buildOnce sync.Once
	builtBin  string
	buildOut  []byte
	buildErr  error
)

// TestMain removes the binary gatewayBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// gatewayBinary builds cmd/infergate once for the package's tests.
func gatewayBinary(t *testing.T, root string) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "infergate-sdk-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "infergate")
		build := exec.Command("go", "build", "-o", builtBin, "./cmd/infergate")
		build.Dir = root
		buildOut, buildErr = build.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building the gateway: %v\n%s", buildErr, buildOut)
	}
	return builtBin
}

// startGateway writes pol to dir/policy.yaml and starts the shipped
// binary serving it on a free port, with env added to its environment,
// and waits until it listens. It stops at the test's end, or at stop.
func startGateway(t *testing.T, root, dir, pol string, env ...string) *testGateway {
	t.Helper()
	polPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(polPath, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := gatewayBinary(t, root)
	g := &testGateway{listen: freePort(t)}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.cmd = exec.CommandContext(ctx, bin, "gateway", "-f", polPath, "--listen", g.listen)
	// SIGTERM, so the gateway stops gracefully and flushes its audit log.
	g.cmd.Cancel = func() error { return g.cmd.Process.Signal(syscall.SIGTERM) }
	g.cmd.WaitDelay = 10 * time.Second
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stdout, g.cmd.Stderr = &g.log, &g.log
	if err := g.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.stop() })
	waitPort(t, g.listen, &g.log)
	return g
}

// stop stops the gateway and waits for it to exit; later calls return the
// first one's result.
func (g *testGateway) stop() error {
	g.once.Do(func() {
		g.cancel()
		g.err = g.cmd.Wait()
	})
	return g.err
}
