package loader

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/internal/privtest"
)

// Production sizes: the largest this project configures.
func scaleConfig() Config {
	c := testConfig()
	c.MaxFlows = 1 << 20
	c.MaxBuckets = 1 << 20
	c.MaxEstablishedClients = 1 << 20
	c.MaxVIPs = 1024
	c.MaxBackends = 4096
	c.MaxRules = 1 << 16
	c.MaxClassPrefixes = 1 << 16
	return c
}

// Both objects pass the verifier with maps at their largest sizes, and the
// balancer forwards through a 1,000-backend VIP.
func TestLoadAtLargestSizes(t *testing.T) {
	b := newBalancer(t, scaleConfig())
	var bes []uint32
	for id := uint32(0); id < 1000; id++ {
		a := netip.AddrFrom4([4]byte{198, 18, byte(100 + id/250), byte(id % 250)})
		if err := b.SetBackend(id, Backend{Addr: a}); err != nil {
			t.Fatal(err)
		}
		bes = append(bes, id)
	}
	if err := b.UpsertVIP(vip4, buildTable(t, bes, nil)); err != nil {
		t.Fatal(err)
	}
	in := tcp("198.18.5.5", "198.18.0.10", 40000, 443).build(t)
	if ret, _ := run(t, b.Program(), in); ret != xdpTx {
		t.Fatalf("verdict %d", ret)
	}
	d, err := LoadDecap(DecapConfig{MaxLocalVIPs: 1 << 16}, "")
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	info, err := b.Program().Info()
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := info.VerifiedInstructions(); ok {
		t.Logf("balancer: %d instructions verified", n)
	}
}

func mountBPFFS(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
			privtest.Skip(t, "cannot mount bpffs: %v", err)
		}
	}
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("infergate-test-%08x", rand.Uint32()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Pinned maps are adopted by the next load: flows, rules and counters
// survive; a changed map size is refused.
func TestPinAndAdopt(t *testing.T) {
	privtest.Root(t)
	pinCPU(t)
	dir := mountBPFFS(t)
	cfg := testConfig()
	b, err := LoadBalancer(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	standardSetup(t, b)
	if err := b.SetRules([]Rule{{Deny: true, Prefixes: pfx("198.18.9.9/32", "198.18.10.0/24", "2001:db8:9::/48", "2001:db8:8::1/128")}}, false); err != nil {
		t.Fatal(err)
	}
	flow := tcp("198.18.5.5", "198.18.0.10", 40000, 443)
	_, first := run(t, b.Program(), flow.build(t))
	b.Close()

	b2, err := LoadBalancer(cfg, dir)
	if err != nil {
		t.Fatalf("adopting pinned maps: %v", err)
	}
	defer b2.Close()
	ret, again := run(t, b2.Program(), flow.build(t))
	if ret != xdpTx {
		t.Fatalf("verdict %d after reload", ret)
	}
	mustEqual(t, "same flow after reload", again, first)
	s := stats(t, b2)
	if s[StatConntrackHit] != 1 || s[StatTxIPIP] != 2 {
		t.Fatalf("after reload: conntrack_hit %d tx %d", s[StatConntrackHit], s[StatTxIPIP])
	}
	if ret, _ := run(t, b2.Program(), tcp("198.18.9.9", "198.18.0.10", 1, 443).build(t)); ret != xdpDrop {
		t.Fatalf("rule lost on reload: verdict %d", ret)
	}
	bad := cfg
	bad.MaxFlows *= 2
	if _, err := LoadBalancer(bad, dir); !errors.Is(err, ebpf.ErrMapIncompatible) {
		t.Fatalf("resized pinned map: err %v, want ErrMapIncompatible", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "conntrack")); err != nil {
		t.Fatalf("conntrack not pinned: %v", err)
	}
}

// A pinned map-in-map whose inner maps have another layout is refused with
// a clear error, though the outer maps look alike to the kernel.
func TestPinnedInnerLayoutRefused(t *testing.T) {
	privtest.Root(t)
	dir := mountBPFFS(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	inner := &ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	outer, err := ebpf.NewMap(&ebpf.MapSpec{Name: "fw_exact4", Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 2, InnerMap: inner})
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	im, err := ebpf.NewMap(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if err := outer.Update(uint32(0), im, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := outer.Pin(filepath.Join(dir, "fw_exact4")); err != nil {
		t.Fatal(err)
	}
	_, err = LoadBalancer(testConfig(), dir)
	if !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), "fw_exact4") {
		t.Fatalf("err %v, want ErrMapIncompatible naming fw_exact4", err)
	}
}

func TestStatNamesMatchMap(t *testing.T) {
	spec, err := loadBalancer()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["stats"].MaxEntries; got != uint32(StatMax) {
		t.Fatalf("stats map has %d entries, Go knows %d", got, StatMax)
	}
	dspec, err := loadDecap()
	if err != nil {
		t.Fatal(err)
	}
	if got := dspec.Maps["decap_stats"].MaxEntries; got != uint32(DecapStatMax) {
		t.Fatalf("decap_stats has %d entries, Go knows %d", got, DecapStatMax)
	}
}
