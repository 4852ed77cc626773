package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// bgpDoc is a valid document with one VIP and a BGP section that cases
// continue (at the peers' indentation unless they say otherwise).
const bgpDoc = minimal + pool + vip + "198.18.0.100" + `
    bgp:
      localASN: 64512`

// TestBGPProblems: every BGP validation path, at the line that causes it.
func TestBGPProblems(t *testing.T) {
	peer := "\n      peers:\n        - {address: 198.18.1.254, asn: 64500}"
	cases := []struct{ name, doc, path, msg string }{
		{"no asn", minimal + pool + vip + "198.18.0.100\n    bgp: #<\n      routerID: 198.18.1.1" + peer,
			"spec.dataplane.bgp.localASN", "is required"},
		{"as_trans", minimal + pool + vip + "198.18.0.100\n    bgp:\n      localASN: 23456 #<" + peer,
			"spec.dataplane.bgp.localASN", "AS_TRANS"},
		{"no peers", minimal + pool + vip + "198.18.0.100\n    bgp: #<\n      localASN: 64512", "spec.dataplane.bgp.peers", "needs at least one peer"},
		{"router id v6", bgpDoc + "\n      routerID: '2001:db8::1' #<" + peer, "spec.dataplane.bgp.routerID", "not an IPv4 address"},
		{"listen without address", bgpDoc + "\n      listen: ':179' #<" + peer, "spec.dataplane.bgp.listen", "is not address:port"},
		{"listen port 0", bgpDoc + "\n      listen: 198.18.1.1:0 #<" + peer, "spec.dataplane.bgp.listen", "port 0"},
		{"peer twice", bgpDoc + peer + "\n        - {address: 198.18.1.254, asn: 64501} #<",
			"spec.dataplane.bgp.peers[1].address", "duplicate peer"},
		{"peer asn", bgpDoc + "\n      peers:\n        - {address: 198.18.1.254, asn: 0} #<", "spec.dataplane.bgp.peers[0].asn", "is required"},
		{"peer address", bgpDoc + "\n      peers:\n        - {address: 224.0.0.5, asn: 1} #<", "spec.dataplane.bgp.peers[0].address", "cannot be a unicast destination"},
		{"peer port", bgpDoc + "\n      peers:\n        - {address: 198.18.1.254, asn: 1, port: 70000} #<", "spec.dataplane.bgp.peers[0].port", "not a port"},
		{"relative password", bgpDoc + "\n      peers:\n        - {address: 198.18.1.254, asn: 1, passwordFile: pw} #<", "spec.dataplane.bgp.peers[0].passwordFile", "not an absolute path"},
		{"hold time", bgpDoc + "\n      peers:\n        - {address: 198.18.1.254, asn: 1, holdTime: 1s} #<", "spec.dataplane.bgp.peers[0].holdTime", "outside 3s"},
		{"announce no vip", bgpDoc + peer + "\n      announce:\n        - 198.18.9.0/24 #<", "spec.dataplane.bgp.announce[0]", "covers no VIP"},
		{"announce host bits", bgpDoc + peer + "\n      announce:\n        - 198.18.0.1/24 #<", "spec.dataplane.bgp.announce[0]", "host bits"},
		{"announce not prefix", bgpDoc + peer + "\n      announce:\n        - 198.18.0.100 #<", "spec.dataplane.bgp.announce[0]", "not a CIDR prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.doc, tc.path, tc.msg) })
	}
}

// TestBGPDefaults: left out, the announced prefixes are the VIP addresses
// (each once, as host prefixes of both families), the port is 179 and the
// hold time 90s; no listener and no router ID are made up.
func TestBGPDefaults(t *testing.T) {
	doc := minimal + pool + v6poolExtra + `
  dataplane:
    vips:
      - {name: a, address: 198.18.0.100, port: 80, pool: p}
      - {name: b, address: 198.18.0.100, port: 443, pool: p}
      - {name: c, address: "2001:db8::100", port: 80, pool: q}
    bgp:
      localASN: 64512
      peers:
        - {address: 198.18.1.254, asn: 64500}
`
	_, c, err := Load(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Dataplane.BGP
	if b == nil {
		t.Fatal("no compiled BGP section")
	}
	want := []netip.Prefix{netip.MustParsePrefix("198.18.0.100/32"), netip.MustParsePrefix("2001:db8::100/128")}
	if !slices.Equal(b.Announce, want) {
		t.Errorf("announce %v, want %v", b.Announce, want)
	}
	if p := b.Peers[0]; p.Port != 179 || p.HoldTime != 90*time.Second {
		t.Errorf("peer defaults %+v", p)
	}
	if b.Listen.IsValid() || b.RouterID.IsValid() {
		t.Errorf("listen %v router ID %v made up", b.Listen, b.RouterID)
	}
	_, c2, err := Load(strings.NewReader(minimal + pool))
	if err != nil {
		t.Fatal(err)
	}
	if c2.Dataplane.BGP != nil {
		t.Error("a document without bgp compiles to a BGP section")
	}
}

// v6poolExtra is a second pool, of one IPv6 backend.
const v6poolExtra = `
    - name: q
      backends:
        - {name: b1, address: "2001:db8:1::1", port: 8000}`
