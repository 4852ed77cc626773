package policy

import (
	"errors"
	"strings"
	"testing"
)

// minimal is a valid document; cases append to its spec (line 5).
const minimal = `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: t
spec:`

// pool is a valid pool cases can reference.
const pool = `
  pools:
    - name: p
      backends:
        - {name: b1, address: 198.18.1.1, port: 8000}`

// TestProblems: every validation path, with its line. The line expected is
// the one marked "#<" in the case's YAML.
func TestProblems(t *testing.T) {
	cases := []struct {
		name, doc, path, msg string
	}{
		// Structure (Decode).
		{"unknown field", minimal + "\n  dataplane:\n    xdpmod: native #<", "spec.dataplane.xdpmod", `unknown field "xdpmod"; did you mean "xdpMode"?`},
		{"unknown top field", minimal + "\nstatus: {} #<", "status", `unknown field "status"`},
		{"object not list", minimal + "\n  pools: {a: 1} #<", "spec.pools", "expected a list, got an object"},
		{"list not object", minimal + "\n  dataplane: [1] #<", "spec.dataplane", "expected an object with fields"},
		{"int for string", minimal + "\n  dataplane:\n    vips:\n      - name: 5 #<", "spec.dataplane.vips[0].name", `expected a string, got integer 5 (quote it: "5")`},
		{"negative uint", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - name: c\n          sources: [198.18.0.0/15]\n          packetsPerSecond: -1 #<", "spec.dataplane.rateLimits.classes[0].packetsPerSecond", "-1 must not be negative"},
		{"uint32 overflow", minimal + "\n  pools:\n    - name: p\n      backends:\n        - name: b\n          address: 198.18.0.1\n          weight: 5000000000 #<", "spec.pools[0].backends[0].weight", "out of range"},
		{"string for int", minimal + "\n  dataplane:\n    vips:\n      - port: http #<", "spec.dataplane.vips[0].port", `expected an integer, got "http"`},
		{"duration as int", minimal + pool + "\n      healthCheck:\n        type: tcp\n        interval: 5 #<", "spec.pools[0].healthCheck.interval", "expected a duration"},
		{"bad duration", minimal + pool + "\n      healthCheck:\n        type: tcp\n        interval: fast #<", "spec.pools[0].healthCheck.interval", `"fast" is not a duration`},
		{"negative duration", minimal + "\n  gateway:\n    timeouts:\n      total: -1s #<", "spec.gateway.timeouts.total", "is negative"},
		{"quoted bool", minimal + pool + "\n      loadReports: \"yes\" #<", "spec.pools[0].loadReports", "expected true or false"},
		{"bad float", minimal + "\n  gateway:\n    tenants:\n      - name: a\n        limits:\n          budgetUSD: lots #<", "spec.gateway.tenants[0].limits.budgetUSD", "expected a number"},
		{"duplicate key", minimal + "\n  gateway:\n    listen: :1\n    listen: :2 #<", "spec.gateway.listen", `field "listen" appears twice (first on line 7)`},
		{"label not string", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: t\n  labels:\n    tier: [1] #<", "metadata.labels.tier", "expected a string, got a list"},

		{"map not list", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: t\n  labels: [a] #<", "metadata.labels", "expected a map, got a list"},
		{"duplicate map key", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: t\n  labels:\n    a: x\n    a: y #<", "metadata.labels.a", `key "a" appears twice (first on line 6)`},
		{"int overflow", minimal + "\n  dataplane:\n    vips:\n      - port: 99999999999999999999 #<", "spec.dataplane.vips[0].port", "expected an integer, got number 99999999999999999999"},
		{"uint32 too big", minimal + "\n  pools:\n    - name: p\n      backends:\n        - name: b\n          address: 198.18.0.1\n          weight: 0x1ffffffff #<", "spec.pools[0].backends[0].weight", "0x1ffffffff is out of range (at most 4294967295)"},
		{"int64 too big", minimal + "\n  gateway:\n    maxBodyBytes: 9223372036854775808 #<", "spec.gateway.maxBodyBytes", "9223372036854775808 is out of range"},
		{"infinite float", minimal + "\n  gateway:\n    tenants:\n      - name: a\n        limits:\n          budgetUSD: .inf #<", "spec.gateway.tenants[0].limits.budgetUSD", ".inf is not a finite number"},
		// Document.
		{"api version", "apiVersion: v1 #<\nkind: Policy\nmetadata: {name: t}", "apiVersion", `"v1" is not supported`},
		{"kind", "apiVersion: infergate.dev/v1alpha1\nkind: Pod #<\nmetadata: {name: t}", "kind", `"Pod" is not supported`},
		{"missing name", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata: #<\n  labels: {a: b}", "metadata.name", "is required"},
		{"bad name", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: Bad_Name #<", "metadata.name", "is not a valid name"},

		{"long name", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa #<", "metadata.name", "is longer than 63 characters"},
		{"long label", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: t\n  labels:\n    k: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv #<", "metadata.labels.k", "label keys must be 1-253 characters"},
		// Dataplane.
		{"long ifname", minimal + "\n  dataplane:\n    interfaces: [this-name-is-too-long] #<", "spec.dataplane.interfaces[0]", "is not an interface name"},
		{"dup ifname", minimal + "\n  dataplane:\n    interfaces:\n      - eth0\n      - eth0 #<", "spec.dataplane.interfaces[1]", `duplicate interface "eth0"`},
		{"dup decap ifname", minimal + "\n  dataplane:\n    decapInterfaces:\n      - eth0\n      - eth0 #<", "spec.dataplane.decapInterfaces[1]", `duplicate interface "eth0"`},
		{"xdp mode", minimal + "\n  dataplane:\n    xdpMode: turbo #<", "spec.dataplane.xdpMode", `"turbo" is not one of native, generic, auto`},
		{"default action", minimal + "\n  dataplane:\n    firewall:\n      defaultAction: drop #<", "spec.dataplane.firewall.defaultAction", `"drop" is not one of allow, deny`},
		{"rule action missing", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r #<\n          sources: [198.18.0.1]", "spec.dataplane.firewall.rules[0].action", "is required (one of allow, deny)"},
		{"rule protocol", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources: [198.18.0.1]\n          protocol: sctp #<", "spec.dataplane.firewall.rules[0].protocol", `"sctp" is not one of tcp, udp, icmp, any`},
		{"rule no sources", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r #<\n          action: deny", "spec.dataplane.firewall.rules[0].sources", "needs at least one address or prefix"},
		{"rule bad source", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources:\n            - 198.18.0.0/33 #<", "spec.dataplane.firewall.rules[0].sources[0]", "is not an address or CIDR prefix"},
		{"rule host bits", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources:\n            - 198.18.0.1/24 #<", "spec.dataplane.firewall.rules[0].sources[0]", "has host bits set (did you mean 198.18.0.0/24?)"},
		{"rule bad address", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources:\n            - 198.18.0.300 #<", "spec.dataplane.firewall.rules[0].sources[0]", `"198.18.0.300" is not an IP address`},
		{"rule port", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources: [198.18.0.1]\n          ports:\n            - 0 #<", "spec.dataplane.firewall.rules[0].ports[0]", "0 is not a port"},
		{"icmp ports", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources: [198.18.0.1]\n          protocol: icmp\n          ports: [1] #<", "spec.dataplane.firewall.rules[0].ports", "icmp has no ports"},
		{"dup rule", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - {name: r, action: deny, sources: [198.18.0.1]}\n        - {name: r, action: deny, sources: [198.18.0.2]} #<", "spec.dataplane.firewall.rules[1].name", `duplicate rule "r"`},
		{"aggregate v4", minimal + "\n  dataplane:\n    rateLimits:\n      aggregateV4: 33 #<", "spec.dataplane.rateLimits.aggregateV4", "33 is not an IPv4 prefix length"},
		{"aggregate v6", minimal + "\n  dataplane:\n    rateLimits:\n      aggregateV6: 129 #<", "spec.dataplane.rateLimits.aggregateV6", "129 is not an IPv6 prefix length"},
		{"class no sources", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - name: c #<", "spec.dataplane.rateLimits.classes[0].sources", "needs at least one"},
		{"class rate", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - name: c\n          sources: [198.18.0.0/15]\n          packetsPerSecond: 2000000000 #<", "spec.dataplane.rateLimits.classes[0].packetsPerSecond", "is more than 1000000000 per second"},
		{"class burst alone", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - name: c\n          sources: [198.18.0.0/15]\n          newConnBurst: 5 #<", "spec.dataplane.rateLimits.classes[0].newConnBurst", "a burst needs newConnsPerSecond"},
		{"class prefix twice", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - {name: a, sources: [198.18.0.0/16]}\n        - name: b\n          sources:\n            - 198.18.0.0/16 #<", "spec.dataplane.rateLimits.classes[1].sources[0]", `duplicate class source "198.18.0.0/16" (also at spec.dataplane.rateLimits.classes[0].sources[0])`},
		{"class host twice", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - name: a\n          sources: [198.18.0.1,\n                    198.18.0.1/32] #<", "spec.dataplane.rateLimits.classes[0].sources[1]", `duplicate class source "198.18.0.1/32"`},
		{"dup class", minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n        - {name: c, sources: [198.18.0.0/16]}\n        - {name: c, sources: [198.19.0.0/16]} #<", "spec.dataplane.rateLimits.classes[1].name", `duplicate class "c"`},
		{"vip port", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: p\n        port: 70000 #<", "spec.dataplane.vips[0].port", "70000 is not a port (1-65535)"},
		{"vip address", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.0/24 #<\n        pool: p\n        port: 80", "spec.dataplane.vips[0].address", "is not an IP address"},
		{"vip multicast", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 224.0.0.1 #<\n        pool: p\n        port: 80", "spec.dataplane.vips[0].address", "cannot be a unicast destination"},
		{"vip protocol", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: p\n        port: 80\n        protocol: icmp #<", "spec.dataplane.vips[0].protocol", `"icmp" is not one of tcp, udp`},
		{"vip forwarding", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: p\n        port: 80\n        forwarding: gre #<", "spec.dataplane.vips[0].forwarding", `"gre" is not one of ipip, l2`},
		{"vip dangling pool", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: nope #<\n        port: 80", "spec.dataplane.vips[0].pool", `refers to pool "nope", which is not declared`},
		{"vip no pool", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v #<\n        address: 198.18.0.100\n        port: 80", "spec.dataplane.vips[0].pool", "is required"},
		{"vip dup service", minimal + pool + "\n  dataplane:\n    vips:\n      - {name: a, address: 198.18.0.100, port: 80, pool: p}\n      - {name: b, address: 198.18.0.100, port: 80, pool: p, protocol: tcp} #<", "spec.dataplane.vips[1]", `duplicate VIP address/port/protocol "198.18.0.100:80/tcp"`},
		{"vip dup name", minimal + pool + "\n  dataplane:\n    vips:\n      - {name: a, address: 198.18.0.100, port: 80, pool: p}\n      - {name: a, address: 198.18.0.100, port: 81, pool: p} #<", "spec.dataplane.vips[1].name", `duplicate VIP "a"`},
		{"vip budget", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: p\n        port: 80\n        newFlowBudget: 1000000001 #<", "spec.dataplane.vips[0].newFlowBudget", "is more than 1000000000 per second"},
		{"vip burst alone", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: p\n        port: 80\n        newConnBurst: 9 #<", "spec.dataplane.vips[0].newConnBurst", "a burst needs newConnsPerSecond"},
		{"local vip", minimal + "\n  dataplane:\n    localVIPs:\n      - nope #<", "spec.dataplane.localVIPs[0]", `"nope" is not an IP address`},
		{"dup local vip", minimal + "\n  dataplane:\n    localVIPs:\n      - 2001:db8::1\n      - 2001:DB8::1 #<", "spec.dataplane.localVIPs[1]", `duplicate local VIP "2001:db8::1"`},
		{"decap source", minimal + "\n  dataplane:\n    decapSources:\n      - 198.18.0.1/33 #<", "spec.dataplane.decapSources[0]", `"198.18.0.1/33" is not an address or CIDR prefix`},
		{"decap source host bits", minimal + "\n  dataplane:\n    decapSources:\n      - 198.18.0.1/24 #<", "spec.dataplane.decapSources[0]", "has host bits set"},
		{"dup decap source", minimal + "\n  dataplane:\n    decapSources:\n      - 198.18.0.1\n      - 198.18.0.1/32 #<", "spec.dataplane.decapSources[1]", `duplicate decapsulation source "198.18.0.1/32"`},

		{"mapped v4 source", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources:\n            - '::ffff:198.18.0.1' #<", "spec.dataplane.firewall.rules[0].sources[0]", "is an IPv4-mapped IPv6 address; write 198.18.0.1"},
		{"mapped v4 prefix", minimal + "\n  dataplane:\n    firewall:\n      rules:\n        - name: r\n          action: deny\n          sources:\n            - '::ffff:198.18.0.0/112' #<", "spec.dataplane.firewall.rules[0].sources[0]", "is an IPv4-mapped IPv6 prefix"},
		{"vip unspecified", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 0.0.0.0 #<\n        pool: p\n        port: 80", "spec.dataplane.vips[0].address", "0.0.0.0 cannot be a unicast destination"},
		{"vip rate", minimal + pool + "\n  dataplane:\n    vips:\n      - name: v\n        address: 198.18.0.100\n        pool: p\n        port: 80\n        newConnsPerSecond: 1000000001 #<", "spec.dataplane.vips[0].newConnsPerSecond", "is more than 1000000000 per second"},
		// Pools.
		{"pool no backends", minimal + "\n  pools:\n    - name: p #<", "spec.pools[0].backends", "a pool needs at least one backend"},
		{"dup pool", minimal + pool + "\n    - name: p #<\n      backends: [{name: b, address: 198.18.0.1}]", "spec.pools[1].name", `duplicate pool "p"`},
		{"backend no address", minimal + pool + "\n        - name: b2 #<", "spec.pools[0].backends[1].address", "is required"},
		{"dup backend name", minimal + pool + "\n        - {name: b1, address: 198.18.1.2} #<", "spec.pools[0].backends[1].name", `duplicate backend "b1"`},
		{"dup backend address", minimal + pool + "\n        - {name: b2, address: 198.18.1.1, port: 8000} #<", "spec.pools[0].backends[1].address", `duplicate backend address "198.18.1.1:8000"`},
		{"backend port", minimal + pool + "\n        - name: b2\n          address: 198.18.1.2\n          port: 65536 #<", "spec.pools[0].backends[1].port", "65536 is not a port"},
		{"backend weight", minimal + pool + "\n        - name: b2\n          address: 198.18.1.2\n          weight: 10001 #<", "spec.pools[0].backends[1].weight", "10001 is more than 10000"},
		{"backend state", minimal + pool + "\n        - name: b2\n          address: 198.18.1.2\n          state: paused #<", "spec.pools[0].backends[1].state", `"paused" is not one of active, draining`},
		{"load report url", minimal + pool + "\n        - name: b2\n          address: 198.18.1.2\n          loadReportURL: ftp://x/load #<", "spec.pools[0].backends[1].loadReportURL", "is not an http(s) URL"},
		{"all zero weights", minimal + "\n  pools:\n    - name: p\n      backends: #<\n        - {name: a, address: 198.18.1.1, weight: 0}\n        - {name: b, address: 198.18.1.2, weight: 0}", "spec.pools[0].backends", "every backend has weight 0"},
		{"health type", minimal + pool + "\n      healthCheck:\n        type: grpc #<", "spec.pools[0].healthCheck.type", `"grpc" is not one of tcp, http`},
		{"health path on tcp", minimal + pool + "\n      healthCheck:\n        type: tcp\n        path: /h #<", "spec.pools[0].healthCheck.path", "only http health checks have a path"},
		{"health path slash", minimal + pool + "\n      healthCheck:\n        type: http\n        path: health #<", "spec.pools[0].healthCheck.path", `"health" must start with /`},
		{"health interval", minimal + pool + "\n      healthCheck:\n        type: tcp\n        interval: 1ms #<\n        timeout: 1ms", "spec.pools[0].healthCheck.interval", "1ms is outside 100ms..1h0m0s"},
		{"health timeout", minimal + pool + "\n      healthCheck:\n        type: tcp\n        interval: 1s\n        timeout: 1s #<", "spec.pools[0].healthCheck.timeout", "1s must be shorter than the interval 1s"},
		{"health rise", minimal + pool + "\n      healthCheck:\n        type: tcp\n        rise: 1000 #<", "spec.pools[0].healthCheck.rise", "1000 is outside 1..100"},
		{"health fall", minimal + pool + "\n      healthCheck:\n        type: tcp\n        fall: -1 #<", "spec.pools[0].healthCheck.fall", "-1 is outside 1..100"},

		{"health type missing", minimal + pool + "\n      healthCheck: #<\n        port: 80", "spec.pools[0].healthCheck.type", "is required (one of tcp, http)"},
		{"health timeout tiny", minimal + pool + "\n      healthCheck:\n        type: tcp\n        timeout: 1us #<", "spec.pools[0].healthCheck.timeout", "1µs is outside 1ms..1h0m0s"},
		// Gateway.
		{"listen", minimal + "\n  gateway:\n    listen: localhost #<", "spec.gateway.listen", `"localhost" is not host:port`},
		{"listen port", minimal + "\n  gateway:\n    listen: localhost:99999 #<", "spec.gateway.listen", "99999 is not a port"},
		{"max body", minimal + "\n  gateway:\n    maxBodyBytes: 10 #<", "spec.gateway.maxBodyBytes", "10 is outside 1024..67108864"},
		{"ttft over total", minimal + "\n  gateway:\n    timeouts:\n      timeToFirstToken: 2m #<\n      total: 1m", "spec.gateway.timeouts.timeToFirstToken", "2m0s is longer than total 1m0s"},
		{"dup tenant", minimal + "\n  gateway:\n    tenants:\n      - name: a\n      - name: a #<", "spec.gateway.tenants[1].name", `duplicate tenant "a"`},
		{"negative budget", minimal + "\n  gateway:\n    tenants:\n      - name: a\n        limits:\n          budgetUSD: -5 #<", "spec.gateway.tenants[0].limits.budgetUSD", "-5 must be a non-negative amount"},
		{"budget window alone", minimal + "\n  gateway:\n    tenants:\n      - name: a\n        limits:\n          budgetWindow: 1h #<", "spec.gateway.tenants[0].limits.budgetWindow", "a budget window needs budgetUSD"},
		{"short budget window", minimal + "\n  gateway:\n    tenants:\n      - name: a\n        limits:\n          budgetUSD: 5\n          budgetWindow: 30s #<", "spec.gateway.tenants[0].limits.budgetWindow", "30s is shorter than a minute"},
		{"connect timeout", minimal + "\n  gateway:\n    timeouts:\n      connect: 2h #<", "spec.gateway.timeouts.connect", "2h0m0s is outside 1ms..1h0m0s"},
		{"model timeouts", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        timeouts:\n          timeToFirstToken: 10m #<\n          total: 1m", "spec.gateway.models[0].timeouts.timeToFirstToken", "10m0s is longer than total 1m0s"},
		{"jwks refresh", minimal + "\n  gateway:\n    jwt:\n      - issuer: i\n        jwksURL: https://idp/jwks\n        jwksRefresh: 1s #<", "spec.gateway.jwt[0].jwksRefresh", "1s is outside 10s..24h0m0s"},
		{"dup issuer", minimal + "\n  gateway:\n    jwt:\n      - {issuer: i, hs256SecretEnv: A}\n      - {issuer: i, hs256SecretEnv: B} #<", "spec.gateway.jwt[1].issuer", `duplicate issuer "i"`},
		{"provider relative key file", minimal + "\n  gateway:\n    providers:\n      - name: o\n        baseURL: https://x\n        apiKeyFile: key.txt #<", "spec.gateway.providers[0].apiKeyFile", `"key.txt" must be an absolute path`},
		{"dup provider", minimal + "\n  gateway:\n    providers:\n      - {name: o, baseURL: https://x}\n      - {name: o, baseURL: https://y} #<", "spec.gateway.providers[1].name", `duplicate provider "o"`},
		{"model name spaces", minimal + pool + "\n  gateway:\n    models:\n      - name: my model #<\n        routes: [{pool: p}]", "spec.gateway.models[0].name", `"my model" is not a model name`},
		{"regex too long", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: regex\n          pattern: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa #<\n          action: flag", "spec.gateway.inspection.rules[0].pattern", "is longer than 4096 bytes"},
		{"key dangling tenant", minimal + "\n  gateway:\n    keys:\n      - name: k\n        tenant: ghost #<\n        hash: sha256:" + strings.Repeat("ab", 32), "spec.gateway.keys[0].tenant", `refers to tenant "ghost", which is not declared`},
		{"key hash format", minimal + "\n  gateway:\n    tenants: [{name: a}]\n    keys:\n      - name: k\n        tenant: a\n        hash: md5:abc #<", "spec.gateway.keys[0].hash", `"md5:abc" is not sha256:<64 lowercase hex digits>`},
		{"key hash short", minimal + "\n  gateway:\n    tenants: [{name: a}]\n    keys:\n      - name: k\n        tenant: a\n        hash: sha256:abcd #<", "spec.gateway.keys[0].hash", "is not sha256:<64 lowercase hex digits>"},
		{"key hash not hex", minimal + "\n  gateway:\n    tenants: [{name: a}]\n    keys:\n      - name: k\n        tenant: a\n        hash: sha256:" + strings.Repeat("zz", 32) + " #<", "spec.gateway.keys[0].hash", "is not sha256:<64 lowercase hex digits>"},
		{"dup key hash", minimal + "\n  gateway:\n    tenants: [{name: a}]\n    keys:\n      - {name: k1, tenant: a, hash: sha256:" + strings.Repeat("ab", 32) + "}\n      - {name: k2, tenant: a, hash: sha256:" + strings.Repeat("ab", 32) + "} #<", "spec.gateway.keys[1].hash", "duplicate key hash"},
		{"dup key name", minimal + "\n  gateway:\n    tenants: [{name: a}]\n    keys:\n      - {name: k, tenant: a, hash: sha256:" + strings.Repeat("ab", 32) + "}\n      - {name: k, tenant: a, hash: sha256:" + strings.Repeat("cd", 32) + "} #<", "spec.gateway.keys[1].name", `duplicate key "k"`},
		{"jwt no secret", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp #<", "spec.gateway.jwt[0]", "needs exactly one of hs256SecretFile, hs256SecretEnv, jwksURL or discovery, or only introspection (has 0)"},
		{"jwt discovery and jwks", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp #<\n        discovery: true\n        jwksURL: https://idp/jwks", "spec.gateway.jwt[0]", "(has 2)"},
		{"jwt discovery issuer not a url", minimal + "\n  gateway:\n    jwt:\n      - issuer: idp #<\n        discovery: true", "spec.gateway.jwt[0].issuer", "is not an http(s) URL"},
		{"introspection no url", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp\n        introspection: #<\n          clientID: c\n          clientSecretEnv: S", "spec.gateway.jwt[0].introspection.url", "is required without discovery"},
		{"introspection no secret", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp\n        introspection: #<\n          url: https://idp/introspect\n          clientID: c", "spec.gateway.jwt[0].introspection", "needs exactly one of clientSecretFile or clientSecretEnv"},
		{"introspection no client", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp\n        introspection: #<\n          url: https://idp/introspect\n          clientSecretEnv: S", "spec.gateway.jwt[0].introspection.clientID", "is required"},
		{"introspection ttl", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp\n        introspection:\n          url: https://idp/introspect\n          clientID: c\n          clientSecretEnv: S\n          cacheTTL: 2h #<", "spec.gateway.jwt[0].introspection.cacheTTL", "outside"},
		{"allow unknown model", minimal + "\n  gateway:\n    tenants:\n      - name: a\n        allow:\n          models: [ghost] #<", "spec.gateway.tenants[0].allow.models[0]", `refers to model "ghost", which is not declared`},
		{"allow bad endpoint", minimal + "\n  gateway:\n    tenants: [{name: a}]\n    keys:\n      - name: k\n        tenant: a\n        hash: sha256:" + strings.Repeat("ab", 32) + "\n        allow:\n          endpoints: [chat] #<", "spec.gateway.keys[0].allow.endpoints[0]", "is not an API path"},
		{"jwt two secrets", minimal + "\n  gateway:\n    jwt:\n      - issuer: https://idp #<\n        hs256SecretEnv: X\n        jwksURL: https://idp/jwks", "spec.gateway.jwt[0]", "(has 2)"},
		{"jwt no issuer", minimal + "\n  gateway:\n    jwt:\n      - hs256SecretEnv: X #<", "spec.gateway.jwt[0].issuer", "is required"},
		{"jwks url", minimal + "\n  gateway:\n    jwt:\n      - issuer: i\n        jwksURL: not a url #<", "spec.gateway.jwt[0].jwksURL", "is not an http(s) URL"},
		{"jwt relative file", minimal + "\n  gateway:\n    jwt:\n      - issuer: i\n        hs256SecretFile: secret.txt #<", "spec.gateway.jwt[0].hs256SecretFile", "must be an absolute path"},
		{"jwt refresh without jwks", minimal + "\n  gateway:\n    jwt:\n      - issuer: i\n        hs256SecretEnv: X\n        jwksRefresh: 1m #<", "spec.gateway.jwt[0].jwksRefresh", "only applies with jwksURL"},
		{"provider url", minimal + "\n  gateway:\n    providers:\n      - name: o\n        baseURL: api.openai.com #<", "spec.gateway.providers[0].baseURL", "is not an http(s) URL"},
		{"provider no url", minimal + "\n  gateway:\n    providers:\n      - name: o #<", "spec.gateway.providers[0].baseURL", "is required"},
		{"http check on a tls pool", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n  pools:\n    - name: p\n      tls: {serverName: gpu.test}\n      healthCheck:\n        type: http #<\n      backends:\n        - {name: b, address: 198.18.1.1, port: 8000}", "spec.pools[0].healthCheck.type", "a pool with tls needs tcp"},
		{"provider is the gateway", minimal + "\n  gateway:\n    listen: 0.0.0.0:8443\n    providers:\n      - name: o\n        baseURL: http://127.0.0.1:8443/v1 #<", "spec.gateway.providers[0].baseURL", "is the gateway's own listener"},
		{"provider is the default listener", minimal + "\n  gateway:\n    providers:\n      - name: o\n        baseURL: http://localhost:8080/v1 #<", "spec.gateway.providers[0].baseURL", "requests would loop"},
		{"provider two keys", minimal + "\n  gateway:\n    providers:\n      - name: o #<\n        baseURL: https://x\n        apiKeyEnv: K\n        apiKeyFile: /k", "spec.gateway.providers[0]", "has both apiKeyFile and apiKeyEnv"},
		{"model no name", minimal + pool + "\n  gateway:\n    models:\n      - routes: [{pool: p}] #<", "spec.gateway.models[0].name", "is required"},
		{"model alias dup", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n      - name: n\n        routes: [{pool: p}]\n        aliases:\n          - m #<", "spec.gateway.models[1].aliases[0]", `duplicate model name "m"`},
		{"model encoding", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        encoding: p50k #<", "spec.gateway.models[0].encoding", `"p50k" is not one of cl100k_base, o200k_base`},
		{"model price", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        price:\n          inputPerMTok: -1 #<", "spec.gateway.models[0].price.inputPerMTok", "-1 is outside 0..10000"},
		{"model no routes", minimal + pool + "\n  gateway:\n    models:\n      - name: m #<", "spec.gateway.models[0].routes", "a model needs at least one route"},
		{"route both", minimal + pool + "\n  gateway:\n    providers: [{name: o, baseURL: https://x}]\n    models:\n      - name: m\n        routes:\n          - {pool: p, provider: o} #<", "spec.gateway.models[0].routes[0]", "has both pool and provider"},
		{"route neither", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes:\n          - {weight: 5} #<", "spec.gateway.models[0].routes[0]", "needs a pool or a provider"},
		{"route dangling pool", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes:\n          - pool: q #<", "spec.gateway.models[0].routes[0].pool", `refers to pool "q", which is not declared`},
		{"fallback dangling provider", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        fallback:\n          - provider: z #<", "spec.gateway.models[0].fallback[0].provider", `refers to provider "z", which is not declared`},
		{"routes all zero", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: #<\n          - {pool: p, weight: 0}", "spec.gateway.models[0].routes", "every route has weight 0"},
		{"route weight", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes:\n          - pool: p\n            weight: 20000 #<", "spec.gateway.models[0].routes[0].weight", "20000 is more than 10000"},
		{"retries", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        retries: 11 #<", "spec.gateway.models[0].retries", "11 is outside 0..10"},
		{"routed pool without port", minimal + "\n  pools:\n    - name: p\n      backends:\n        - {name: b1, address: 198.18.1.1} #<\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]", "spec.pools[0].backends[0].port", "is required: model route spec.gateway.models[0].routes[0] sends requests to this pool"},
		{"detector", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: ssn #<\n          action: block", "spec.gateway.inspection.rules[0].detector", `"ssn" is not one of email`},
		{"inspect action", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: email\n          action: drop #<", "spec.gateway.inspection.rules[0].action", `"drop" is not one of block, redact, flag`},
		{"regex missing", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r #<\n          detector: regex\n          action: flag", "spec.gateway.inspection.rules[0].pattern", "is required for the regex detector"},
		{"regex invalid", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: regex\n          pattern: 'a(b' #<\n          action: flag", "spec.gateway.inspection.rules[0].pattern", "is not a valid regular expression: missing closing )"},
		{"pattern not regex", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: email\n          pattern: x #<\n          action: flag", "spec.gateway.inspection.rules[0].pattern", "only the regex detector takes a pattern"},
		{"deny-list words", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r #<\n          detector: deny-list\n          action: flag", "spec.gateway.inspection.rules[0].words", "is required for the deny-list detector"},
		{"words not deny-list", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: email\n          words: [a] #<\n          action: flag", "spec.gateway.inspection.rules[0].words", "only the deny-list detector takes words"},
		{"empty word", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: deny-list\n          action: flag\n          words:\n            - ' ' #<", "spec.gateway.inspection.rules[0].words[0]", "is empty"},
		{"dup inspect rule", minimal + "\n  gateway:\n    inspection:\n      rules:\n        - {name: r, detector: email, action: flag}\n        - {name: r, detector: phone, action: flag} #<", "spec.gateway.inspection.rules[1].name", `duplicate rule "r"`},
		{"max message bytes", minimal + "\n  gateway:\n    inspection:\n      maxMessageBytes: -1 #<", "spec.gateway.inspection.maxMessageBytes", "-1 must not be negative"},
		{"redis", minimal + "\n  gateway:\n    limitStore:\n      redis: redis-host #<", "spec.gateway.limitStore.redis", `"redis-host" is not host:port`},
		{"redis password relative", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      passwordFile: pw #<", "spec.gateway.limitStore.passwordFile", `"pw" must be an absolute path`},
		{"redis user without password", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      username: gw #<", "spec.gateway.limitStore.username", "needs passwordFile"},
		{"redis user with space", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      passwordFile: /pw\n      username: 'g w' #<", "spec.gateway.limitStore.username", "spaces or control characters"},
		{"redis auth without redis", minimal + "\n  gateway:\n    limitStore: #<\n      passwordFile: /pw", "spec.gateway.limitStore", "apply only with redis"},
		{"redis tls off with files", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      tls: #<\n        caFile: /ca.pem", "spec.gateway.limitStore.tls", "enabled is false"},
		{"redis tls cert without key", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      tls: #<\n        enabled: true\n        certFile: /c.pem", "spec.gateway.limitStore.tls", "certFile and keyFile go together"},
		{"redis tls ca relative", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      tls:\n        enabled: true\n        caFile: ca.pem #<", "spec.gateway.limitStore.tls.caFile", `"ca.pem" must be an absolute path`},
		{"redis tls server name", minimal + "\n  gateway:\n    limitStore:\n      redis: 127.0.0.1:6379\n      tls:\n        enabled: true\n        serverName: 'a b' #<", "spec.gateway.limitStore.tls.serverName", "is not a host name"},
		{"audit path", minimal + "\n  gateway:\n    audit:\n      path: audit.log #<", "spec.gateway.audit.path", `"audit.log" must be an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.doc, tc.path, tc.msg) })
	}
}

func markedLine(t *testing.T, doc string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.HasSuffix(l, "#<") {
			return i + 1
		}
	}
	t.Fatal("case has no #< marker")
	return 0
}

// TestAllProblemsAtOnce: several independent mistakes, structural and
// semantic, are all reported in line order in one error; a semantic echo of
// a structural problem (a port that failed to decode reads as 0) is not.
func TestAllProblemsAtOnce(t *testing.T) {
	doc := minimal + pool + `
      extra: 1
  dataplane:
    xdpMode: turbo
    vips:
      - {name: v, address: 198.18.0.1, port: 70000, pool: nope}
      - {name: w, address: 198.18.0.2, port: http, pool: p}
`
	_, _, err := Load(strings.NewReader(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	got := []string{}
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	want := []string{
		`spec.pools[0].extra: unknown field "extra" (line 10)`,
		`spec.dataplane.xdpMode: "turbo" is not one of native, generic, auto (line 12)`,
		`spec.dataplane.vips[0].port: 70000 is not a port (1-65535) (line 14)`,
		`spec.dataplane.vips[0].pool: refers to pool "nope", which is not declared (line 14)`,
		`spec.dataplane.vips[1].port: expected an integer, got "http" (line 15)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(err.Error(), "invalid policy: 5 problems:\n  spec.pools[0].extra") {
		t.Fatalf("error text: %s", err)
	}
	// Decode alone reports the structural problems only.
	if _, err := Decode(strings.NewReader(doc)); !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("Decode: %v", err)
	}
}

// wantProblem loads doc and requires a problem at path whose message holds
// msg, reported on the line marked "#<".
func wantProblem(t *testing.T, doc, path, msg string) {
	t.Helper()
	want := markedLine(t, doc)
	_, _, err := Load(strings.NewReader(doc))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	for _, p := range ve.Problems {
		if p.Path == path && strings.Contains(p.Message, msg) {
			if p.Line != want {
				t.Fatalf("%s reported on line %d, want %d", p, p.Line, want)
			}
			return
		}
	}
	t.Fatalf("no problem %s: ...%s... (line %d) among:\n%v", path, msg, want, err)
}
