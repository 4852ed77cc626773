package main

import (
	"strings"
	"testing"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/api/apitest"
)

// TestDrainCommand: drain asks the agent to withdraw (status then says
// why the routes are withdrawn), --undo to announce again.
func TestDrainCommand(t *testing.T) {
	a := apitest.Start(t)
	a.SetStatus(api.Status{Version: "v0.1.0-test", Role: "balancer", StartedAt: a.StartedAt()})
	if r := runCLI(t, a.Socket, "", "drain"); r.code != exitOK || !strings.Contains(r.stdout, "routes are withdrawn") {
		t.Fatalf("drain: %+v", r)
	}
	if r := runCLI(t, a.Socket, "", "status"); !strings.Contains(r.stdout, "withdrawn: node drained") {
		t.Fatalf("status after drain:\n%s", r.stdout)
	}
	r := runCLI(t, a.Socket, "", "drain", "--undo", "-o", "json")
	if r.code != exitOK || !strings.Contains(r.stdout, `"draining": false`) {
		t.Fatalf("drain --undo: %+v", r)
	}
	if r := runCLI(t, a.Socket, "", "drain", "extra"); r.code != exitUsage {
		t.Fatalf("drain with an argument: exit %d", r.code)
	}
}
