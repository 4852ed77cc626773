package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/infergate/infergate/agent/internal/vethtest"
	"github.com/infergate/infergate/agent/xdpattach"
	"github.com/infergate/infergate/internal/privtest"
)

// runWait bounds how long an in-process agent may take to become ready or
// to stop.
const runWait = 15 * time.Second

type runningAgent struct {
	cancel context.CancelFunc
	errc   chan error
	client *http.Client
}

func startRun(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{cancel: cancel, errc: make(chan error, 1)}
	go func() { ra.errc <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-ra.errc:
		cancel()
		t.Fatalf("agent exited before ready: %v", err)
	case <-time.After(runWait):
		cancel()
		t.Fatal("agent not ready in time")
	}
	ra.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", cfg.Socket)
	}}}
	return ra
}

func (ra *runningAgent) stop(t *testing.T) {
	t.Helper()
	ra.cancel()
	select {
	case err := <-ra.errc:
		if err != nil {
			t.Fatalf("agent returned %v", err)
		}
	case <-time.After(runWait):
		t.Fatal("agent did not stop")
	}
}

func (ra *runningAgent) status(t *testing.T) Status {
	t.Helper()
	resp, err := ra.client.Get("http://agent/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := decodeJSON(resp.Body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func countPinnedKeys(t *testing.T, path string) int {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var prev []byte
	n := 0
	for {
		next := make([]byte, m.KeySize())
		var p any
		if prev != nil {
			p = prev
		}
		if err := m.NextKey(p, next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return n
			}
			t.Fatal(err)
		}
		n++
		prev = next
	}
}

// TestRunRestartKeepsState runs the whole agent in-process twice on a real
// veth: the first attaches natively, pins, steers a real TCP SYN sent from
// a namespace (a conntrack entry); after it stops, the second adopts maps
// and link (new program, same link, same conntrack), restores the stored
// policy, and uninstall removes it all.
func TestRunRestartKeepsState(t *testing.T) {
	privtest.Tools(t, "bash", "timeout")
	mount, pinDir := testBPFFS(t)
	v := vethtest.New(t)
	dir := t.TempDir()
	vip := fmt.Sprintf("198.18.%d.100", v.Subnet)
	doc := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: run}
spec:
  dataplane:
    interfaces: [%s]
    xdpMode: native
    vips:
      - {name: llm, address: %s, port: 80, pool: gpus}
  pools:
    - name: gpus
      backends:
        - {name: g1, address: %s, port: 8000}
`, v.Near, vip, v.FarAddr)
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Role: RoleBalancer, PolicyFile: pf, StateDir: filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "run", "agent.sock"), BPFFS: mount, PinDir: pinDir,
		Loader: testLoaderConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MetricsAddr: freePort(t)}

	a1 := startRun(t, cfg)
	st := a1.status(t)
	if len(st.Interfaces) != 1 || !st.Interfaces[0].Attached || st.Interfaces[0].Mode != "native" || st.Policy.Name != "run" {
		t.Fatalf("first agent: %+v", st)
	}
	idx, _ := NetlinkResolver{}.Interface(v.Near)
	prog1 := vethtest.XDPProgID(t, idx)

	// A client in the namespace opens a connection to the VIP through the
	// balancer (the SYN is steered and tracked; the reply path is not part
	// of this test).
	vethtest.IP(t, "-n", v.NS, "route", "add", vip+"/32", "via", v.NearAddr.String())
	_ = exec.Command("ip", "netns", "exec", v.NS, "timeout", "1", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/80", vip)).Run()
	flows := countPinnedKeys(t, filepath.Join(pinDir, "conntrack"))
	if flows == 0 {
		t.Fatal("no conntrack entry after a SYN to the VIP")
	}
	metrics := scrapeMetrics(t, cfg.MetricsAddr)
	for _, want := range []string{
		fmt.Sprintf(`infergate_xdp_attached{interface="%s",mode="native",program="balancer"} 1`, v.Near),
		`infergate_vip_new_flows_total{vip="llm"} 1`,
		`infergate_backend_new_flows_total{address="` + v.FarAddr.String() + `",backend="g1",pool="gpus"} 1`,
		// The flow is IPv4: it is in conntrack, and the IPv6 table is
		// reported apart, empty, at its own size.
		fmt.Sprintf(`infergate_map_entries{map="conntrack"} %d`+"\n", flows),
		`infergate_map_entries{map="conntrack6"} 0` + "\n",
		`infergate_map_max_entries{map="conntrack6"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	a1.stop(t)
	if _, err := os.Stat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after a clean stop: %v", err)
	}
	if xdpattach.AttachedMode(idx) != "native" {
		t.Fatal("XDP detached when the agent stopped")
	}

	cfg.PolicyFile = ""
	a2 := startRun(t, cfg)
	st = a2.status(t)
	if st.Policy.Name != "run" || !st.Interfaces[0].Attached {
		t.Fatalf("second agent: %+v", st)
	}
	if got := countPinnedKeys(t, filepath.Join(pinDir, "conntrack")); got < flows {
		t.Fatalf("conntrack has %d entries after the restart, had %d", got, flows)
	}
	if prog2 := vethtest.XDPProgID(t, idx); prog2 == prog1 || prog2 == 0 {
		t.Fatalf("program on the interface: %d, first agent's %d", prog2, prog1)
	}
	a2.stop(t)

	if err := xdpattach.Uninstall(pinDir, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if xdpattach.AttachedMode(idx) != "" {
		t.Fatal("still attached after uninstall")
	}
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunGPUHost runs the agent as a GPU host: the decapsulator attached
// and pinned with its local VIPs, the L7 gateway serving, the load report
// served.
func TestRunGPUHost(t *testing.T) {
	mount, pinDir := testBPFFS(t)
	v := vethtest.New(t)
	dir := t.TempDir()
	vip := fmt.Sprintf("198.18.%d.100", v.Subnet)
	doc := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: host}
spec:
  dataplane:
    decapInterfaces: [%s]
    localVIPs: [%s]
  pools:
    - name: local
      backends:
        - {name: self, address: 127.0.0.1, port: 8000}
  gateway:
    tenants: [{name: acme}]
    models:
      - name: m
        routes: [{pool: local}]
`, v.Near, vip)
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	gwAddr, loadAddr := freePort(t), freePort(t)
	cfg := Config{Role: RoleGPUHost, PolicyFile: pf, StateDir: filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "agent.sock"), BPFFS: mount, PinDir: pinDir,
		Gateway: true, GatewayListen: gwAddr, LoadReportAddr: loadAddr, MetricsAddr: freePort(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a := startRun(t, cfg)
	defer a.stop(t)
	st := a.status(t)
	if st.Role != RoleGPUHost || len(st.Interfaces) != 1 || st.Interfaces[0].Program != "decap" || !st.Interfaces[0].Attached {
		t.Fatalf("status %+v", st)
	}
	if n := countPinnedKeys(t, filepath.Join(pinDir, "local_vips")); n != 1 {
		t.Fatalf("%d local VIPs pinned, want 1", n)
	}
	resp, err := http.Get("http://" + gwAddr + "/v1/models")
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway answered %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + loadAddr + "/load")
	if err != nil {
		t.Fatalf("load report: %v", err)
	}
	var rep map[string]any
	err = decodeJSON(resp.Body, &rep)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("load report: %d %v", resp.StatusCode, err)
	}
	if _, ok := rep["healthy"]; !ok {
		t.Fatalf("load report lacks healthy: %v", rep)
	}

	m := scrapeMetrics(t, cfg.MetricsAddr)
	for _, want := range []string{"infergate_gpu_healthy ", `infergate_xdp_packets_total{verdict="decapsulated"}`,
		fmt.Sprintf(`infergate_xdp_attached{interface="%s",mode="native",program="decap"} 1`, v.Near)} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The interface goes away: status says so. It comes back (a new
	// index): the agent re-attaches on its own.
	vethtest.IP(t, "link", "del", v.Near)
	waitStatus(t, a, func(st Status) bool { return !st.Interfaces[0].Attached })
	vethtest.IP(t, "link", "add", v.Near, "type", "veth", "peer", "name", v.Far+"z")
	vethtest.IP(t, "link", "set", v.Near, "up")
	waitStatus(t, a, func(st Status) bool { return st.Interfaces[0].Attached })
	idx, _ := NetlinkResolver{}.Interface(v.Near)
	if xdpattach.AttachedMode(idx) == "" {
		t.Fatal("re-created interface has no XDP program")
	}
}

func waitStatus(t *testing.T, a *runningAgent, cond func(Status) bool) {
	t.Helper()
	deadline := time.Now().Add(runWait)
	for {
		st := a.status(t)
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never matched: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
