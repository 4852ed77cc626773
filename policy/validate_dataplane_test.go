package policy

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// rules opens a firewall rule list; cases append rules (line 8 onwards).
const rules = minimal + "\n  dataplane:\n    firewall:\n      rules:"

// v6pool is a pool of one IPv6 backend.
const v6pool = `
  pools:
    - name: p
      backends:
        - {name: b1, address: "2001:db8:1::1", port: 8000}`

// vip opens a VIP on pool p; cases give its address.
const vip = "\n  dataplane:\n    vips:\n      - name: v\n        port: 80\n        pool: p\n        address: "

// TestDataplaneProblems: what the agent would refuse (and the data plane
// could not do) is refused by validation, at the line that causes it.
func TestDataplaneProblems(t *testing.T) {
	cases := []struct {
		name, doc, path, msg string
	}{
		// Contradictory firewall rules: the first matching entry decides.
		{"allow then deny", rules + "\n        - {name: a, action: allow, sources: [198.18.5.0/24]}\n        - {name: b, action: deny, sources: [198.18.5.0/24]} #<",
			"spec.dataplane.firewall.rules[1].sources[0]", `rule "b" denies 198.18.5.0/24, which "a" (rules[0]) already allows`},
		{"deny then allow", rules + "\n        - {name: a, action: deny, sources: [198.18.5.0/24]}\n        - {name: b, action: allow, sources: [198.18.5.0/24]} #<",
			"spec.dataplane.firewall.rules[1].sources[0]", `rule "b" allows 198.18.5.0/24, which "a" (rules[0]) already denies`},
		{"same host spelled twice", rules + "\n        - {name: a, action: allow, sources: [198.18.5.1]}\n        - name: b\n          action: deny\n          sources:\n            - 198.18.9.0/24\n            - 198.18.5.1/32 #<",
			"spec.dataplane.firewall.rules[1].sources[1]", `rule "b" denies 198.18.5.1, which "a" (rules[0]) already allows`},
		{"ports within ports", rules + "\n        - {name: a, action: deny, protocol: tcp, sources: [198.18.5.0/24], ports: [80, 443]}\n        - {name: b, action: allow, protocol: tcp, sources: [198.18.5.0/24], ports: [443]} #<",
			"spec.dataplane.firewall.rules[1].sources[0]", `already denies for every protocol and port it names`},
		{"any protocol covers tcp", rules + "\n        - {name: a, action: allow, sources: [\"2001:db8:5::/48\"]}\n        - {name: b, action: deny, protocol: tcp, sources: [\"2001:db8:5::/48\"], ports: [22]} #<",
			"spec.dataplane.firewall.rules[1].sources[0]", `rule "b" denies 2001:db8:5::/48`},
		{"decided by two rules", rules + "\n        - {name: a, action: allow, protocol: tcp, sources: [198.18.5.0/24], ports: [80]}\n        - {name: c, action: deny, protocol: tcp, sources: [198.18.5.0/24], ports: [443]}\n        - {name: b, action: deny, protocol: tcp, sources: [198.18.5.0/24], ports: [80, 443]} #<",
			"spec.dataplane.firewall.rules[2].sources[0]", `which "a" (rules[0]) already allows`},
		// Entries per source, as the kernel keeps them.
		{"nine-port rule", rules + "\n        - name: a\n          action: deny\n          protocol: tcp\n          sources: [198.18.5.0/24] #<\n          ports: [1, 2, 3, 4, 5, 6, 7, 8, 9]",
			"spec.dataplane.firewall.rules[0].sources[0]", "source 198.18.5.0/24 carries 9 firewall entries (one per port of each rule that matches it, covering prefixes' rules included: a); the data plane keeps at most 8"},
		{"nine entries with a covering prefix", rules + "\n        - {name: wide, action: deny, protocol: tcp, sources: [198.18.0.0/16], ports: [1, 2, 3, 4, 5]}\n        - {name: narrow, action: allow, protocol: tcp, sources: [198.18.5.0/24], ports: [6, 7, 8, 9]} #<",
			"spec.dataplane.firewall.rules[1].sources[0]", "carries 9 firewall entries (one per port of each rule that matches it, covering prefixes' rules included: narrow, wide)"},
		// VIPs the balancer cannot answer for.
		{"vip is a backend", minimal + pool + vip + "198.18.1.1 #<",
			"spec.dataplane.vips[0].address", "198.18.1.1 is also the address of backend spec.pools[0].backends[0]; a VIP must not be a backend"},
		{"vip loopback", minimal + pool + vip + "127.0.0.1 #<", "spec.dataplane.vips[0].address", "127.0.0.1 is a loopback address"},
		{"vip loopback /8", minimal + pool + vip + "127.3.2.1 #<", "spec.dataplane.vips[0].address", "127.3.2.1 is a loopback address"},
		{"vip loopback v6", minimal + v6pool + vip + "'::1' #<", "spec.dataplane.vips[0].address", "::1 is a loopback address"},
		{"vip broadcast", minimal + pool + vip + "255.255.255.255 #<", "spec.dataplane.vips[0].address", "255.255.255.255 is the broadcast address"},
		{"vip unspecified", minimal + pool + vip + "0.0.0.0 #<", "spec.dataplane.vips[0].address", "0.0.0.0 cannot be a unicast destination"},
		{"vip unspecified v6", minimal + v6pool + vip + "'::' #<", "spec.dataplane.vips[0].address", ":: cannot be a unicast destination"},
		{"vip multicast", minimal + pool + vip + "224.0.0.1 #<", "spec.dataplane.vips[0].address", "224.0.0.1 cannot be a unicast destination"},
		{"vip multicast v6", minimal + v6pool + vip + "'ff02::1' #<", "spec.dataplane.vips[0].address", "ff02::1 cannot be a unicast destination"},
		{"local vip loopback", minimal + "\n  dataplane:\n    localVIPs:\n      - 198.18.0.100\n      - 127.0.0.1 #<", "spec.dataplane.localVIPs[1]", "127.0.0.1 is a loopback address"},
		// What the agent refused after validation had passed.
		{"vip v4, backend v6", minimal + v6pool + " #<" + vip + "198.18.0.100",
			"spec.pools[0].backends[0]", "backend b1 (2001:db8:1::1) and VIP v (198.18.0.100) are of different address families"},
		{"vip v6, backend v4", minimal + pool + " #<" + vip + "'2001:db8::100'",
			"spec.pools[0].backends[0]", "are of different address families"},
		{"address twice behind a vip", minimal + pool + "\n        - {name: b2, address: 198.18.1.1, port: 8001} #<" + vip + "198.18.0.100",
			"spec.pools[0].backends[1]", "backend b2 repeats address 198.18.1.1 in pool p, which VIP v steers to"},
		{"vip pool all draining", minimal + "\n  pools:\n    - name: p\n      backends:\n        - {name: b1, address: 198.18.1.1, state: draining}\n  dataplane:\n    vips:\n      - name: v #<\n        port: 80\n        pool: p\n        address: 198.18.0.100",
			"spec.dataplane.vips[0]", "VIP v: pool p has no backend with a positive weight that is not draining"},
		// Bounds.
		{"body of 1 GiB", minimal + "\n  gateway:\n    maxBodyBytes: 1073741824 #<", "spec.gateway.maxBodyBytes", "1073741824 is outside 1024..67108864"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.doc, tc.path, tc.msg) })
	}
}

// TestDataplaneAccepted: the neighbours of the refusals above stay valid.
func TestDataplaneAccepted(t *testing.T) {
	cases := []struct{ name, doc string }{
		{"allow a port, then deny the rest", rules + "\n        - {name: a, action: allow, protocol: tcp, sources: [198.18.5.0/24], ports: [443]}\n        - {name: b, action: deny, sources: [198.18.5.0/24]}"},
		{"deny twice", rules + "\n        - {name: a, action: deny, sources: [198.18.5.0/24]}\n        - {name: b, action: deny, sources: [198.18.5.0/24]}"},
		{"allow inside a deny", rules + "\n        - {name: a, action: deny, sources: [198.18.0.0/16]}\n        - {name: b, action: allow, sources: [198.18.5.0/24]}"},
		{"other protocol", rules + "\n        - {name: a, action: allow, protocol: udp, sources: [198.18.5.0/24]}\n        - {name: b, action: deny, protocol: tcp, sources: [198.18.5.0/24]}"},
		{"eight-port rule", rules + "\n        - {name: a, action: deny, protocol: tcp, sources: [198.18.5.0/24], ports: [1, 2, 3, 4, 5, 6, 7, 8]}"},
		{"eight entries with a covering prefix", rules + "\n        - {name: wide, action: deny, protocol: tcp, sources: [198.18.0.0/16], ports: [1, 2, 3, 4]}\n        - {name: narrow, action: allow, protocol: tcp, sources: [198.18.5.0/24], ports: [6, 7, 8, 9]}"},
		{"nine entries on unrelated prefixes", rules + "\n        - {name: a, action: deny, protocol: tcp, sources: [198.18.4.0/24], ports: [1, 2, 3, 4, 5]}\n        - {name: b, action: allow, protocol: tcp, sources: [198.18.5.0/24], ports: [6, 7, 8, 9]}"},
		{"same address twice, L7 only", minimal + pool + "\n        - {name: b2, address: 198.18.1.1, port: 8001}"},
		{"vip of the same family", minimal + v6pool + vip + "'2001:db8::100'"},
		{"body of 64 MiB", minimal + "\n  gateway:\n    maxBodyBytes: 67108864"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Load(strings.NewReader(tc.doc)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFirewallEntriesMatchKernel: the bound policy checks is the one the
// XDP program was compiled with.
func TestFirewallEntriesMatchKernel(t *testing.T) {
	b, err := os.ReadFile("../bpf/include/consts.h")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#define FW_ENTRIES_PER_PREFIX (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("FW_ENTRIES_PER_PREFIX not found in bpf/include/consts.h")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != FirewallEntriesPerPrefix {
		t.Fatalf("FW_ENTRIES_PER_PREFIX is %d, FirewallEntriesPerPrefix %d", n, FirewallEntriesPerPrefix)
	}
}
