package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
)

// Every listener the binary opens without being told where is on
// loopback, and the help says so: the agent's metrics and load report,
// and the gateway whether the address comes from its flag default or from
// a policy that names none.
func TestListenersDefaultToLoopback(t *testing.T) {
	loopback := func(what, addr string) {
		t.Helper()
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("%s defaults to %q, want a loopback address", what, addr)
		}
	}
	agentFlags := newAgentCmd().Flags()
	for _, name := range []string{"metrics-addr", "load-report-addr"} {
		f := agentFlags.Lookup(name)
		if f == nil {
			t.Fatalf("agent has no --%s", name)
		}
		loopback("agent --"+name, f.DefValue)
	}
	loopback("gateway's own default", defaultGatewayListen)
	loopback("policy gateway.listen", policy.DefaultListen)

	c, err := loadGatewayPolicy("../../policy/testdata/good/minimal.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	loopback("a policy without gateway.listen", c.Gateway.Listen)
	// The help names the address the gateway really binds.
	usage := newGatewayCmd().Flags().Lookup("listen").Usage
	if !strings.Contains(usage, c.Gateway.Listen) {
		t.Errorf("gateway --listen help %q does not name the default %s", usage, c.Gateway.Listen)
	}
}
