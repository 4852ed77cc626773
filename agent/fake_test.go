package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/infergate/infergate/policy"
)

// fakeDataplane records every write so tests can count them and inject
// failures. It stands in for the kernel only where the reconciler's logic,
// not the kernel, is under test; the same tests also run on the real
// loaded objects.
type fakeDataplane struct {
	mu          sync.Mutex
	writes      int
	failOn      func(what string) error
	defaultDeny bool
	rules       []policy.CompiledRule
	aggV4       int
	classes     []policy.CompiledClass
	backends    map[uint32]BackendEntry
	vips        map[VIPKey]VIPEntry
	tables      map[VIPKey][]uint32
	local       []netip.Addr
	maxBackends uint32
	counters    Counters
}

func newFakeDataplane() *fakeDataplane {
	return &fakeDataplane{backends: map[uint32]BackendEntry{}, vips: map[VIPKey]VIPEntry{}, tables: map[VIPKey][]uint32{}, maxBackends: 64}
}

func (f *fakeDataplane) write(what string) error {
	f.writes++
	if f.failOn != nil {
		return f.failOn(what)
	}
	return nil
}

func (f *fakeDataplane) SetFirewall(dd bool, rules []policy.CompiledRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("firewall"); err != nil {
		return err
	}
	f.defaultDeny, f.rules = dd, slices.Clone(rules)
	return nil
}

func (f *fakeDataplane) SetClasses(v4, v6 int, c []policy.CompiledClass) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("classes"); err != nil {
		return err
	}
	f.aggV4, f.classes = v4, slices.Clone(c)
	return nil
}

func (f *fakeDataplane) SetBackend(id uint32, b BackendEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id >= f.maxBackends {
		return fmt.Errorf("id %d out of range", id)
	}
	if err := f.write(fmt.Sprintf("backend %s", b.Address)); err != nil {
		return err
	}
	f.backends[id] = b
	return nil
}

func (f *fakeDataplane) DeleteBackend(id uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write(fmt.Sprintf("delete backend %d", id)); err != nil {
		return err
	}
	delete(f.backends, id)
	return nil
}

func (f *fakeDataplane) SetVIP(v VIPEntry, table []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("vip " + v.Key.String()); err != nil {
		return err
	}
	for _, id := range table {
		if _, ok := f.backends[id]; !ok {
			return fmt.Errorf("table names backend %d, which is not written", id)
		}
	}
	f.vips[v.Key] = v
	f.tables[v.Key] = slices.Clone(table)
	return nil
}

func (f *fakeDataplane) DeleteVIP(k VIPKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("delete vip " + k.String()); err != nil {
		return err
	}
	delete(f.vips, k)
	delete(f.tables, k)
	return nil
}

func (f *fakeDataplane) SetLocalVIPs(v []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write("local"); err != nil {
		return err
	}
	f.local = slices.Clone(v)
	return nil
}

func (f *fakeDataplane) Backends() (map[uint32]BackendEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.backends), nil
}

func (f *fakeDataplane) VIPs() (map[VIPKey]VIPEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.vips), nil
}

func (f *fakeDataplane) MaxBackends() uint32 { return f.maxBackends }

func (f *fakeDataplane) Counters(_, _ []uint32) (Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counters, nil
}

func (f *fakeDataplane) snapshot() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("%v|%v|%d|%v|%v|%v|%v|%v", f.defaultDeny, f.rules, f.aggV4, f.classes, f.backends, f.vips, f.tables, f.local)
}

// fakeResolver answers from tables; routes are by exact address.
type fakeResolver struct {
	ifaces map[string]int
	hops   map[netip.Addr]Hop
}

func (r fakeResolver) Interface(name string) (int, error) {
	if i, ok := r.ifaces[name]; ok {
		return i, nil
	}
	return 0, errors.New("Link not found")
}

func (r fakeResolver) NextHop(_ context.Context, a netip.Addr) (Hop, error) {
	if h, ok := r.hops[a]; ok {
		return h, nil
	}
	return Hop{}, fmt.Errorf("%w to %s", ErrNoRoute, a)
}

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	testGwMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
)

// onLinkResolver routes every address given directly through ifindex 2.
func onLinkResolver(addrs ...string) fakeResolver {
	r := fakeResolver{ifaces: map[string]int{"eth0": 2}, hops: map[netip.Addr]Hop{}}
	for i, s := range addrs {
		a := netip.MustParseAddr(s)
		r.hops[a] = Hop{Ifindex: 2, Ifname: "eth0", SrcMAC: testSrcMAC, MAC: net.HardwareAddr{0x02, 0, 0, 0, 1, byte(i)}, Source: netip.MustParseAddr("198.18.0.1"), OnLink: true}
	}
	return r
}

func testBackendAddr(i int) netip.Addr { return netip.MustParseAddr(testBackends[i]) }
