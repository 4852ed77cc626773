// Package vethtest builds the real-kernel test topology the agent's
// packages share: a veth pair whose far end lives in a network namespace
// the test created, removed when the test ends. It needs root and ip(8).
package vethtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/infergate/infergate/internal/privtest"
)

const (
	// suffixBytes of randomness keep names of concurrent tests apart while
	// staying inside IFNAMSIZ with a four-letter prefix.
	suffixBytes = 3
	// subnetBase and subnetSpan choose the third octet of
	// 198.19.<subnet>.0/24; tests use up to subnet+2.
	subnetBase = 20
	subnetSpan = 200
)

// Peer is a veth pair whose near end stays in this namespace and whose far
// end lives in the namespace NS.
type Peer struct {
	NS, Near, Far string
	NearAddr      netip.Addr
	FarAddr       netip.Addr
	FarMAC        net.HardwareAddr
	Subnet        int // third octet of 198.19.<Subnet>.0/24
}

// IP runs ip(8) with args and fails the test on error.
func IP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Suffix returns a short random name suffix.
func Suffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, suffixBytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// New builds the pair with 198.19.<n>.1/24 near and .2 far.
func New(t *testing.T) *Peer {
	t.Helper()
	privtest.Root(t)
	privtest.Tools(t, "ip")
	sfx := Suffix(t)
	n, err := rand.Int(rand.Reader, big.NewInt(subnetSpan))
	if err != nil {
		t.Fatal(err)
	}
	v := &Peer{NS: "igag" + sfx, Near: "igan" + sfx, Far: "igaf" + sfx, Subnet: subnetBase + int(n.Int64())}
	v.NearAddr = netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", v.Subnet))
	v.FarAddr = netip.MustParseAddr(fmt.Sprintf("198.19.%d.2", v.Subnet))
	IP(t, "netns", "add", v.NS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", v.NS).Run() })
	IP(t, "link", "add", v.Near, "type", "veth", "peer", "name", v.Far)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", v.Near).Run() })
	IP(t, "link", "set", v.Far, "netns", v.NS)
	IP(t, "addr", "add", v.NearAddr.String()+"/24", "dev", v.Near)
	IP(t, "link", "set", v.Near, "up")
	IP(t, "-n", v.NS, "addr", "add", v.FarAddr.String()+"/24", "dev", v.Far)
	IP(t, "-n", v.NS, "link", "set", v.Far, "up")
	IP(t, "-n", v.NS, "link", "set", "lo", "up")
	out, err := exec.Command("ip", "-n", v.NS, "-br", "link", "show", v.Far).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if mac, err := net.ParseMAC(f); err == nil && len(mac) == 6 {
			v.FarMAC = mac
		}
	}
	if v.FarMAC == nil {
		t.Fatalf("no MAC in %q", out)
	}
	return v
}

// XDPProgID returns the ID of the XDP program the kernel runs on ifindex
// (0 when none), so a test can tell which agent's program is attached.
func XDPProgID(t *testing.T, ifindex int) uint32 {
	t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil {
		t.Fatalf("link %d: %v", ifindex, err)
	}
	return l.Attrs().Xdp.ProgId
}
