package api_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/api/apitest"
	"github.com/infergate/infergate/policy"
)

const doc = `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: t
spec:
  pools:
    - name: p
      backends: [{name: b, address: 198.18.1.1, port: 8000}]
`

func TestClientAgainstFake(t *testing.T) {
	ctx := context.Background()
	a := apitest.Start(t)
	c := api.NewClient(a.Socket)

	if _, err := c.GetPolicy(ctx); !api.IsNotFound(err) {
		t.Fatalf("GetPolicy with none applied: %v", err)
	}
	dry, err := c.ApplyPolicy(ctx, []byte(doc), true)
	if err != nil || !dry.DryRun || !dry.Changed || dry.Name != "t" {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if _, err := c.GetPolicy(ctx); !api.IsNotFound(err) {
		t.Fatalf("dry run applied something: %v", err)
	}
	r1, err := c.ApplyPolicy(ctx, []byte(doc), false)
	if err != nil || !r1.Changed {
		t.Fatalf("apply: %+v %v", r1, err)
	}
	again, err := c.ApplyPolicy(ctx, []byte(doc), false)
	if err != nil || again.Changed || again.Version != r1.Version {
		t.Fatalf("re-apply: %+v %v", again, err)
	}
	r2, err := c.ApplyPolicy(ctx, []byte(strings.Replace(doc, "198.18.1.1", "198.18.1.2", 1)), false)
	if err != nil || r2.Version == r1.Version {
		t.Fatalf("second apply: %+v %v", r2, err)
	}
	got, err := c.GetPolicy(ctx)
	if err != nil || got.Version != r2.Version || !strings.Contains(got.Document, "198.18.1.2") {
		t.Fatalf("get: %+v %v", got, err)
	}
	h, err := c.History(ctx)
	if err != nil || len(h) != 2 || !h[0].Current || h[0].Document != "" || h[1].Version != r1.Version {
		t.Fatalf("history: %+v %v", h, err)
	}
	rb, err := c.Rollback(ctx, api.RollbackPrevious)
	if err != nil || rb.Version != r1.Version {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Policy.Version != r1.Version {
		t.Fatalf("status: %+v %v", st, err)
	}

	// A refused document carries every problem with its line.
	_, err = c.ApplyPolicy(ctx, []byte(strings.Replace(doc, "port: 8000", "port: 80000", 1)), false)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 400 || len(ae.Problems) != 1 || ae.Problems[0].Line != 8 ||
		ae.Problems[0].Path != "spec.pools[0].backends[0].port" {
		t.Fatalf("refused apply: %#v", err)
	}

	k, err := c.CreateKey(ctx, "ci", "alice")
	if err != nil || k.Key == "" {
		t.Fatalf("create key: %+v %v", k, err)
	}
	keys, err := c.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].HashPrefix == "" {
		t.Fatalf("list keys: %+v %v", keys, err)
	}
	if err := c.RevokeKey(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeKey(ctx, "ci"); !api.IsNotFound(err) {
		t.Fatalf("revoking a missing key: %v", err)
	}
	if err := c.DeletePolicy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx); !api.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	e := &api.Error{Status: 400, Message: "desired state refused: spec.a: x; spec.b: y",
		Problems: []policy.Problem{{Path: "spec.a", Message: "x"}, {Path: "spec.b", Line: 3, Message: "y"}}}
	if got, want := e.Error(), "desired state refused\n  spec.a: x\n  spec.b: y (line 3)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	e.Message = "policy refused"
	if got, want := e.Error(), "policy refused\n  spec.a: x\n  spec.b: y (line 3)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestAgentNotRunning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.sock")
	_, err := api.NewClient(missing).Status(ctx)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "agent not running: no socket at "+missing) {
		t.Fatalf("missing socket: %v", err)
	}

	// A socket file left behind by a dead agent refuses connections.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	_, err = api.NewClient(stale).Backends(ctx)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "nothing is listening on "+stale) {
		t.Fatalf("stale socket: %v", err)
	}

	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = api.NewClient(plain).Stats(ctx)
	if !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("plain file: %v", err)
	}
}

// TestPermissionDenied: a socket the caller may not reach. Root reaches any
// socket, so as root this checks how the dial error is classified instead.
func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		a := apitest.Start(t)
		link := filepath.Join(dir, "agent.sock")
		if err := os.Symlink(a.Socket, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(a.Socket), 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(filepath.Dir(a.Socket), 0o700) })
		_, err := api.NewClient(link).Status(context.Background())
		if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("got %v", err)
		}
		return
	}
	err := api.ClassifyDialError("/run/x.sock", &os.SyscallError{Syscall: "connect", Err: syscall.EACCES})
	if !errors.Is(err, api.ErrUnavailable) || err.Error() != "permission denied on /run/x.sock: the agent's socket is root-only (run with sudo)" {
		t.Fatalf("got %v", err)
	}
}
