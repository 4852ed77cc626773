package loader

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
)

// readBackState writes backends and VIPs of both families through the
// setters, with every flag set somewhere, then deletes one of each, and
// returns what the tables should read back as.
func readBackState(t *testing.T, b *Balancer) (map[uint32]Backend, []VIP) {
	t.Helper()
	backends := map[uint32]Backend{
		0:  {Addr: netip.MustParseAddr("198.18.1.1")},
		1:  {Addr: netip.MustParseAddr("198.18.1.2"), MAC: net.HardwareAddr{2, 0, 0, 0, 1, 2}, Draining: true},
		7:  {Addr: netip.MustParseAddr("198.18.1.7")},
		10: {Addr: netip.MustParseAddr("2001:db8:1::a"), MAC: net.HardwareAddr{2, 0, 0, 0, 1, 10}},
		63: {Addr: netip.MustParseAddr("2001:db8:1::3f"), Draining: true},
	}
	for id, be := range backends {
		if err := b.SetBackend(id, be); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteBackend(7); err != nil {
		t.Fatal(err)
	}
	delete(backends, 7)

	l2 := vip4udp
	l2.L2 = true
	gone := VIP{ID: 9, Addr: netip.MustParseAddr("198.18.0.10"), Port: 8080, Protocol: 6}
	vips := []VIP{vip4, vip6, l2, gone}
	for _, v := range vips {
		if err := b.UpsertVIP(v, buildTable(t, []uint32{0, 1}, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteVIP(gone); err != nil {
		t.Fatal(err)
	}
	return backends, vips[:3]
}

func checkReadBack(t *testing.T, b *Balancer, wantBackends map[uint32]Backend, wantVIPs []VIP) {
	t.Helper()
	got, err := b.Backends()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantBackends) {
		t.Errorf("backends read back as\n%v\nwant\n%v", got, wantBackends)
	}
	vips, err := b.VIPs()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(vips) != fmt.Sprint(wantVIPs) {
		t.Errorf("VIPs read back as\n%v\nwant\n%v", vips, wantVIPs)
	}
}

func TestReadBack(t *testing.T) {
	b := newBalancer(t, testConfig())
	if got, err := b.Backends(); err != nil || len(got) != 0 {
		t.Fatalf("fresh backend table reads %v, %v", got, err)
	}
	if got, err := b.VIPs(); err != nil || len(got) != 0 {
		t.Fatalf("fresh VIP table reads %v, %v", got, err)
	}
	backends, vips := readBackState(t, b)
	checkReadBack(t, b, backends, vips)

	// A guarded VIP reads back without its rate (not recoverable), and an
	// update in place replaces the entry rather than adding one.
	guarded := vip4
	guarded.L2, guarded.NewConnsPerSecond, guarded.NewConnBurst = true, 1000, 10
	if err := b.UpsertVIP(guarded, buildTable(t, []uint32{0}, nil)); err != nil {
		t.Fatal(err)
	}
	vips[0].L2 = true
	// A 4-in-6 backend address is stored as IPv4 and reads back unmapped.
	if err := b.SetBackend(5, Backend{Addr: netip.MustParseAddr("::ffff:198.18.1.5")}); err != nil {
		t.Fatal(err)
	}
	backends[5] = Backend{Addr: netip.MustParseAddr("198.18.1.5")}
	checkReadBack(t, b, backends, vips)
}

// After a restart, a new Balancer reads back what the old one pinned.
func TestReadBackAfterAdopt(t *testing.T) {
	privtest.Root(t)
	dir := mountBPFFS(t)
	b, err := LoadBalancer(testConfig(), dir)
	if err != nil {
		t.Fatal(err)
	}
	backends, vips := readBackState(t, b)
	b.Close()

	b2, err := LoadBalancer(testConfig(), dir)
	if err != nil {
		t.Fatalf("adopting pinned maps: %v", err)
	}
	defer b2.Close()
	checkReadBack(t, b2, backends, vips)
}
