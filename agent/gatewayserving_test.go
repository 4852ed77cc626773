package agent

import (
	"errors"
	"strings"
	"testing"
)

// stoppedGateway is a gateway whose listener failed.
type stoppedGateway struct {
	fakeGateway
	err error
}

func (g *stoppedGateway) ServeErr() error { return g.err }

// TestStatusShowsStoppedGateway: a gateway listener that stopped shows in
// Status, where it was invisible (the agent looked healthy).
func TestStatusShowsStoppedGateway(t *testing.T) {
	gw := &stoppedGateway{}
	a := newAgentWithGateway(t, gw)
	if st := a.Status(); st.LastError != "" {
		t.Fatalf("serving gateway: LastError %q", st.LastError)
	}
	gw.err = errors.New("h1: accept: too many open files")
	if st := a.Status(); !strings.Contains(st.LastError, "too many open files") {
		t.Fatalf("stopped gateway: LastError %q; want the listener's error", st.LastError)
	}
}
