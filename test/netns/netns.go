// Package netns builds throwaway network topologies for end-to-end tests and
// the demo: namespaces, veth pairs, a bridge "switch", addresses and routes,
// all named with a per-run prefix and removed on Close, also after a failed
// test. It shells out to iproute2 because that is what an operator would type
// to reproduce a failure by hand; every command is logged in the error.
//
// Addresses used by callers must come from 198.18.0.0/15 and 2001:db8::/32.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// commandTimeout bounds each ip(8) call.
const commandTimeout = 10 * time.Second

// Topology owns every namespace it created.
type Topology struct {
	Prefix string

	mu         sync.Mutex
	namespaces []string
	procs      []*exec.Cmd
}

// New starts an empty topology whose names begin with prefix plus a random
// suffix, so parallel tests and an interrupted earlier run never collide.
func New(prefix string) *Topology {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return &Topology{Prefix: prefix + hex.EncodeToString(b[:])}
}

// Name returns the full namespace name for a short role name.
func (t *Topology) Name(role string) string { return t.Prefix + "-" + role }

// AddNS creates a namespace with loopback up.
func (t *Topology) AddNS(role string) (string, error) {
	name := t.Name(role)
	if err := Run("ip", "netns", "add", name); err != nil {
		return "", err
	}
	t.mu.Lock()
	t.namespaces = append(t.namespaces, name)
	t.mu.Unlock()
	return name, t.Exec(name, "ip", "link", "set", "lo", "up")
}

// Veth connects namespace a (interface ifA) and namespace b (ifB).
func (t *Topology) Veth(a, ifA, b, ifB string) error {
	tmpA, tmpB := tempIfName(), tempIfName()
	if err := Run("ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB); err != nil {
		return err
	}
	for _, s := range [][]string{
		{"ip", "link", "set", tmpA, "netns", a},
		{"ip", "link", "set", tmpB, "netns", b},
	} {
		if err := Run(s...); err != nil {
			return err
		}
	}
	if err := t.Exec(a, "ip", "link", "set", tmpA, "name", ifA); err != nil {
		return err
	}
	if err := t.Exec(b, "ip", "link", "set", tmpB, "name", ifB); err != nil {
		return err
	}
	if err := t.Exec(a, "ip", "link", "set", ifA, "up"); err != nil {
		return err
	}
	return t.Exec(b, "ip", "link", "set", ifB, "up")
}

// Bridge creates a bridge in ns and enslaves the given interfaces to it.
func (t *Topology) Bridge(ns, name string, ports ...string) error {
	if err := t.Exec(ns, "ip", "link", "add", name, "type", "bridge"); err != nil {
		return err
	}
	for _, p := range ports {
		if err := t.Exec(ns, "ip", "link", "set", p, "master", name); err != nil {
			return err
		}
	}
	return t.Exec(ns, "ip", "link", "set", name, "up")
}

// Exec runs a command inside namespace ns and fails with its output.
func (t *Topology) Exec(ns string, args ...string) error {
	return Run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// Output runs a command inside ns and returns its standard output.
func (t *Topology) Output(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	full := append([]string{"netns", "exec", ns}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ip %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Start launches a long-running process inside ns; Close kills it.
func (t *Topology) Start(ns string, stdout, stderr *os.File, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v in %s: %w", args, ns, err)
	}
	t.mu.Lock()
	t.procs = append(t.procs, cmd)
	t.mu.Unlock()
	return cmd, nil
}

// Do runs fn on an OS thread switched into namespace ns. Sockets fn opens
// belong to ns for their whole life, even once used from other goroutines.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never returned to the pool: it stays locked and
		// dies with the goroutine, so no other goroutine inherits ns.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Close kills started processes and deletes every namespace (and with them
// their veths and bridges). It is safe to call twice.
func (t *Topology) Close() error {
	t.mu.Lock()
	procs, names := t.procs, t.namespaces
	t.procs, t.namespaces = nil, nil
	t.mu.Unlock()
	for _, p := range procs {
		if p.Process != nil {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}
	var first error
	for i := len(names) - 1; i >= 0; i-- {
		if err := Run("ip", "netns", "del", names[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Run runs a command on the host and includes its output in the error.
func Run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tempIfName makes an interface name unique on the host for the moment
// before it is moved into its namespace and renamed; kernel names are
// limited to 15 bytes.
func tempIfName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "ig" + hex.EncodeToString(b[:])
}
