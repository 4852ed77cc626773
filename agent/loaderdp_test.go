package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/agent/internal/vethtest"
	"github.com/infergate/infergate/agent/xdpattach"
	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/loader"
)

const (
	xdpTx = 3
	// testMapSize keeps the real maps small so tests load fast.
	testMapSize = 4096
)

func testLoaderConfig() loader.Config {
	return loader.Config{MaxFlows: testMapSize, MaxBuckets: testMapSize, MaxEstablishedClients: testMapSize,
		MaxVIPs: 16, MaxBackends: 64, MaxRules: 64, MaxClassPrefixes: 64}
}

// testBPFFS mounts a private BPF filesystem on a temp dir for one test
// (xdpattach's tests check EnsureBPFFS itself).
func testBPFFS(t *testing.T) (mount, pinDir string) {
	t.Helper()
	privtest.Root(t)
	mount = t.TempDir()
	pinDir = filepath.Join(mount, "infergate")
	mounted, err := xdpattach.EnsureBPFFS(mount, pinDir)
	if err != nil {
		t.Fatal(err)
	}
	if !mounted {
		t.Fatal("a fresh temp dir was already a bpffs")
	}
	t.Cleanup(func() { _ = unix.Unmount(mount, unix.MNT_DETACH) })
	return mount, pinDir
}

// pinCPU keeps this goroutine on CPU 0: the connection table is per CPU,
// as it is for a flow RSS keeps on one queue. The thread is discarded when
// the test's goroutine ends (locked, never unlocked).
func pinCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatalf("pin to CPU 0: %v", err)
	}
}

func synPacket(t *testing.T, client string, sport uint16, syn bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xc1}, DstMAC: testSrcMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(client), DstIP: net.ParseIP("198.18.100.1")}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: syn, ACK: !syn, Seq: 1, Window: 1000}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// runPacket runs one frame through the program and returns the verdict and
// the outer IPv4 destination of an encapsulated result.
func runPacket(t *testing.T, prog *ebpf.Program, pkt []byte) (uint32, netip.Addr) {
	t.Helper()
	out := make([]byte, len(pkt)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	var dst netip.Addr
	if ret == xdpTx {
		p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		}
	}
	return ret, dst
}

func loadPinned(t *testing.T, pinDir string) (*loader.Balancer, *BalancerDataplane) {
	t.Helper()
	b, err := loader.LoadBalancer(testLoaderConfig(), pinDir)
	if err != nil {
		t.Fatal(err)
	}
	return b, NewBalancerDataplane(b, testLoaderConfig(), pinDir)
}

// TestRealDataplaneReconcileAndAdopt runs the reconciler against the real
// loaded balancer: idempotence, all-or-nothing, then an agent exit and a
// second instance adopting the pinned maps with conntrack intact.
func TestRealDataplaneReconcileAndAdopt(t *testing.T) {
	_, pinDir := testBPFFS(t)
	pinCPU(t)
	b, dp := loadPinned(t, pinDir)
	res := onLinkResolver(append(testBackends, "198.18.1.4")...)
	rec := NewReconciler(dp)
	if err := rec.Adopt(); err != nil {
		t.Fatal(err)
	}
	if err := dp.SetEncapSources(netip.MustParsePrefix("198.18.0.1/32"), netip.Prefix{}); err != nil {
		t.Fatal(err)
	}
	d := buildFor(t, testCompiled(), res, nil)
	if st, err := rec.Apply(d); err != nil || st.Writes != 6 {
		t.Fatalf("first apply: %d writes, %v", st.Writes, err)
	}
	if st, err := rec.Apply(buildFor(t, testCompiled(), res, nil)); err != nil || st.Writes != 0 {
		t.Fatalf("re-apply: %d writes, %v", st.Writes, err)
	}
	got, err := dp.Backends()
	if err != nil || len(got) != 3 {
		t.Fatalf("read back %d backends: %v", len(got), err)
	}
	vips, err := dp.VIPs()
	if err != nil || len(vips) != 1 {
		t.Fatalf("read back VIPs %v: %v", vips, err)
	}
	for k := range vips {
		if k != (VIPKey{netip.MustParseAddr("198.18.100.1"), 80, 6}) {
			t.Fatalf("read back VIP %v", k)
		}
	}

	// Open flows from a few clients.
	flows := map[string]netip.Addr{}
	for i, c := range []string{"198.19.1.1", "198.19.1.2", "198.19.1.3", "198.19.1.4", "198.19.1.5"} {
		ret, dst := runPacket(t, b.Program(), synPacket(t, c, uint16(40000+i), true))
		if ret != xdpTx || !dst.IsValid() {
			t.Fatalf("SYN from %s: verdict %d", c, ret)
		}
		flows[c] = dst
	}

	// A change that fails at its last step (deleting the replaced backend,
	// after the table was swapped) is undone in the kernel maps.
	bad := testCompiled()
	bad.Pools[0].Backends[2].Address = netip.MustParseAddr("198.18.1.4")
	fdp := &failingDP{Dataplane: dp}
	frec := NewReconciler(fdp)
	if err := frec.Adopt(); err != nil {
		t.Fatal(err)
	}
	if _, err := frec.Apply(buildFor(t, testCompiled(), res, nil)); err != nil {
		t.Fatal(err)
	}
	before, _ := dp.Backends()
	fdp.armed = true
	if _, err := frec.Apply(buildFor(t, bad, res, nil)); err == nil || !strings.Contains(err.Error(), "previous state restored") {
		t.Fatalf("failing apply: %v", err)
	}
	after, _ := dp.Backends()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("failed apply left backends %v, had %v", after, before)
	}
	for c, want := range flows {
		if ret, dst := runPacket(t, b.Program(), synPacket(t, c, 40000+uint16(indexOf(c)), false)); ret != xdpTx || dst != want {
			t.Fatalf("after a failed apply, %s went to %s (verdict %d), was %s", c, dst, ret, want)
		}
	}
	// The flows' ACKs moved them to the established-flow tables.
	fill, err := b.Fill()
	if err != nil || fill.Flows+fill.EstablishedFlows < len(flows) {
		t.Fatalf("conntrack holds %d flows and %d established, %v", fill.Flows, fill.EstablishedFlows, err)
	}
	ids := rec.BackendIDs()

	// The agent exits: handles close, pins stay.
	b.Close()

	b2, dp2 := loadPinned(t, pinDir)
	defer b2.Close()
	fill2, err := b2.Fill()
	if err != nil || fill2.Flows != fill.Flows || fill2.EstablishedFlows != fill.EstablishedFlows {
		t.Fatalf("adopted conntrack holds %d flows and %d established, had %d and %d (%v)",
			fill2.Flows, fill2.EstablishedFlows, fill.Flows, fill.EstablishedFlows, err)
	}
	rec2 := NewReconciler(dp2)
	if err := rec2.Adopt(); err != nil {
		t.Fatal(err)
	}
	for a, id := range ids {
		if rec2.BackendIDs()[a] != id {
			t.Fatalf("adopting agent has %s at %d, was %d", a, rec2.BackendIDs()[a], id)
		}
	}
	if err := dp2.SetEncapSources(netip.MustParsePrefix("198.18.0.1/32"), netip.Prefix{}); err != nil {
		t.Fatal(err)
	}
	st, err := rec2.Apply(buildFor(t, testCompiled(), res, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Backends are read back and not rewritten; the table, rules and
	// classes, which are not read back, are rewritten once.
	if st.Writes != 3 {
		t.Fatalf("adoption wrote %d, want 3", st.Writes)
	}
	// Established flows keep their backends through the new program and
	// the rewritten table.
	for c, want := range flows {
		if ret, dst := runPacket(t, b2.Program(), synPacket(t, c, 40000+uint16(indexOf(c)), false)); ret != xdpTx || dst != want {
			t.Fatalf("after adoption, %s went to %s (verdict %d), was %s", c, dst, ret, want)
		}
	}
	// A weight change moves new flows only: every established flow keeps
	// its backend.
	heavy := testCompiled()
	heavy.Pools[0].Backends[0].Weight = 1000
	heavy.Pools[0].Backends[1].Weight = 1
	if st, err := rec2.Apply(buildFor(t, heavy, res, nil)); err != nil || st.Writes != 1 {
		t.Fatalf("weight change: %d writes, %v", st.Writes, err)
	}
	for c, want := range flows {
		if ret, dst := runPacket(t, b2.Program(), synPacket(t, c, 40000+uint16(indexOf(c)), false)); ret != xdpTx || dst != want {
			t.Fatalf("after a weight change, %s went to %s (verdict %d), was %s", c, dst, ret, want)
		}
	}
	c, err := dp2.Counters(slices0(rec2.VIPIndices()), slices0(rec2.BackendIDs()))
	if err != nil || c.Verdicts["tx"] == 0 || len(c.Maps) < 3 || c.Maps[2].Name != "ct_est4" || c.Maps[2].Entries == 0 {
		t.Fatalf("counters %+v, %v", c, err)
	}

	if err := xdpattach.Uninstall(pinDir, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin dir still there after uninstall: %v", err)
	}
}

// failingDP fails the first backend deletion after armed is set.
type failingDP struct {
	Dataplane
	armed bool
}

func (f *failingDP) DeleteBackend(id uint32) error {
	if f.armed {
		f.armed = false
		return errors.New("injected failure")
	}
	return f.Dataplane.DeleteBackend(id)
}

func indexOf(client string) int {
	return int(client[len(client)-1] - '1') // 198.19.1.<n>
}

func slices0[K comparable](m map[K]uint32) []uint32 {
	out := make([]uint32, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestAdoptRefusesChangedLayout(t *testing.T) {
	_, pinDir := testBPFFS(t)
	// A map pinned under the backend table's name with another value size,
	// as an older or newer agent might have left it.
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "backends", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(filepath.Join(pinDir, "backends")); err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, err = loader.LoadBalancer(testLoaderConfig(), pinDir)
	if err == nil || !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("changed layout: %v", err)
	}
	// The pinned map is left alone, not silently replaced.
	if _, err := os.Stat(filepath.Join(pinDir, "backends")); err != nil {
		t.Fatal(err)
	}
}

// TestRealDataplaneIPv6ReadBack: IPv6 VIPs and backends written through the
// loader read back with the same addresses and ports.
func TestRealDataplaneIPv6ReadBack(t *testing.T) {
	_, pinDir := testBPFFS(t)
	b, dp := loadPinned(t, pinDir)
	defer b.Close()
	c := testCompiled()
	c.Dataplane.VIPs[0].Address = netip.MustParseAddr("2001:db8::100")
	c.Dataplane.VIPs[0].Port = 8443
	v6 := []string{"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"}
	for i := range c.Pools[0].Backends {
		c.Pools[0].Backends[i].Address = netip.MustParseAddr(v6[i])
	}
	rec := NewReconciler(dp)
	if _, err := rec.Apply(buildFor(t, c, onLinkResolver(v6...), nil)); err != nil {
		t.Fatal(err)
	}
	got, err := dp.Backends()
	if err != nil {
		t.Fatal(err)
	}
	ids := rec.BackendIDs()
	for _, s := range v6 {
		a := netip.MustParseAddr(s)
		e, ok := got[ids[a]]
		if !ok || e.Address != a || e.MAC == nil || e.Draining {
			t.Fatalf("backend %s read back as %+v (%v)", a, e, ok)
		}
	}
	vips, err := dp.VIPs()
	if err != nil {
		t.Fatal(err)
	}
	k := VIPKey{netip.MustParseAddr("2001:db8::100"), 8443, 6}
	if e, ok := vips[k]; !ok || e.Index != rec.VIPIndices()[k] {
		t.Fatalf("VIP read back as %v", vips)
	}
}

// TestRunGPUHostTrustsOnlyPolicyBalancers: the shipped agent on a GPU host
// loads spec.dataplane.decapSources into the decapsulator, and the
// decapsulator's untrusted-source drops reach the metrics by name.
func TestRunGPUHostTrustsOnlyPolicyBalancers(t *testing.T) {
	mount, pinDir := testBPFFS(t)
	v := vethtest.New(t)
	dir := t.TempDir()
	doc := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata: {name: host}
spec:
  dataplane:
    decapInterfaces: [%s]
    localVIPs: [198.18.%d.100]
    decapSources: [198.18.%d.1, 198.19.200.0/24, "2001:db8:ff::/64"]
`, v.Near, v.Subnet, v.Subnet)
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Role: RoleGPUHost, PolicyFile: pf, StateDir: filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "agent.sock"), BPFFS: mount, PinDir: pinDir, MetricsAddr: freePort(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a := startRun(t, cfg)
	defer a.stop(t)
	if n := countPinnedKeys(t, filepath.Join(pinDir, "decap_src4")); n != 2 {
		t.Fatalf("%d trusted IPv4 sources pinned, want 2", n)
	}
	if n := countPinnedKeys(t, filepath.Join(pinDir, "decap_src6")); n != 1 {
		t.Fatalf("%d trusted IPv6 sources pinned, want 1", n)
	}
	if m := scrapeMetrics(t, cfg.MetricsAddr); !strings.Contains(m, `reason="drop_untrusted_source"`) {
		t.Fatalf("metrics lack the untrusted-source drop reason")
	}
}
