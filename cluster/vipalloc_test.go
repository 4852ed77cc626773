package cluster

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pools(cidrs ...string) []VIPPool {
	p := VIPPool{Name: "a"}
	for _, c := range cidrs {
		p.CIDRs = append(p.CIDRs, netip.MustParsePrefix(c))
	}
	return []VIPPool{p}
}

func aged(s *corev1.Service, age int) *corev1.Service {
	s.CreationTimestamp = metav1.NewTime(time.Unix(1_000_000-int64(age), 0))
	return s
}

// New Services get the lowest free addresses, skipping the network
// address; a Service keeps the address its status holds.
func TestAllocateStable(t *testing.T) {
	ps := pools("198.18.100.0/30")
	a := aged(lbService("ns", "a", "", 80), 3)
	b := aged(lbService("ns", "b", "198.18.100.2", 80), 2)
	got := Allocate(ps, []*corev1.Service{a, b})
	if got["ns/a"].VIP != netip.MustParseAddr("198.18.100.1") || got["ns/b"].VIP != netip.MustParseAddr("198.18.100.2") {
		t.Fatalf("%+v", got)
	}
	// The pool is full (.3 is the broadcast address).
	c := aged(lbService("ns", "c", "", 80), 1)
	got = Allocate(ps, []*corev1.Service{a, b, c})
	if got["ns/c"].VIP.IsValid() || got["ns/c"].Err == "" {
		t.Fatalf("c got %+v from a full pool", got["ns/c"])
	}
	// b deleted: its address is free again.
	got = Allocate(ps, []*corev1.Service{c})
	if got["ns/c"].VIP != netip.MustParseAddr("198.18.100.1") {
		t.Fatalf("%+v", got)
	}
}

// Two Services claiming one address: the older keeps it, the newer is
// moved; an address outside every pool is replaced.
func TestAllocateNoDouble(t *testing.T) {
	ps := pools("198.18.100.0/29")
	old := aged(lbService("ns", "old", "198.18.100.3", 80), 10)
	young := aged(lbService("ns", "young", "198.18.100.3", 80), 1)
	stray := aged(lbService("ns", "stray", "198.18.200.1", 80), 5)
	got := Allocate(ps, []*corev1.Service{young, stray, old})
	if got["ns/old"].VIP != netip.MustParseAddr("198.18.100.3") {
		t.Fatalf("old lost its address: %+v", got)
	}
	seen := map[netip.Addr]string{}
	for k, a := range got {
		if !a.VIP.IsValid() {
			t.Fatalf("%s got none: %s", k, a.Err)
		}
		if o, dup := seen[a.VIP]; dup {
			t.Fatalf("%s and %s share %s", k, o, a.VIP)
		}
		seen[a.VIP] = k
		if !ps[0].CIDRs[0].Contains(a.VIP) {
			t.Fatalf("%s got %s outside the pool", k, a.VIP)
		}
	}
}

// The pool annotation picks the pool; an unknown pool is an error.
func TestAllocatePoolAnnotation(t *testing.T) {
	ps := []VIPPool{{Name: "a", CIDRs: []netip.Prefix{netip.MustParsePrefix("198.18.100.0/30")}},
		{Name: "b", CIDRs: []netip.Prefix{netip.MustParsePrefix("198.18.101.8/32")}}}
	s := lbService("ns", "s", "", 80)
	s.Annotations = map[string]string{PoolAnnotation: "b"}
	x := lbService("ns", "x", "", 80)
	x.Annotations = map[string]string{PoolAnnotation: "nope"}
	got := Allocate(ps, []*corev1.Service{s, x})
	if got["ns/s"].VIP != netip.MustParseAddr("198.18.101.8") || got["ns/x"].Err == "" {
		t.Fatalf("%+v", got)
	}
}
