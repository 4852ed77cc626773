package loader

import (
	"runtime"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
)

// A flow tracked on one CPU is a connection hit on another: the connection
// table is shared, so a flow whose packets change CPU (RSS rehash, IRQ
// moves) keeps its backend even after the Maglev table changed.
func TestFlowTrackedAcrossCPUs(t *testing.T) {
	if runtime.NumCPU() < 2 {
		privtest.Skip(t, "needs 2 CPUs")
	}
	b := newBalancer(t, testConfig())
	standardSetup(t, b)
	tmpl := tcp("198.19.0.0", "198.18.0.10", 0, 443).build(t)
	const flows = 200
	first := make([]uint32, flows)
	for i := range first {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, true))
		first[i] = outerDst(t, out)
	}
	// A new table that sends every flow to backend 3.
	if err := b.UpsertVIP(vip4, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	pinTo(t, 1) // this test's thread, locked by newBalancer, moves to CPU 1
	before := stats(t, b)
	for i := range first {
		_, out := run(t, b.Program(), flowPacket(tmpl, i, false))
		if got := outerDst(t, out); got != first[i] {
			t.Fatalf("flow %d: backend %d on CPU 0, %d on CPU 1", i, first[i], got)
		}
	}
	s := stats(t, b)
	if hits := s[StatConntrackHit] - before[StatConntrackHit]; hits != flows {
		t.Errorf("connection hits on CPU 1: %d, want %d", hits, flows)
	}
	if ins := s[StatConntrackInsert] - before[StatConntrackInsert]; ins != 0 {
		t.Errorf("inserts on CPU 1: %d, want 0", ins)
	}
}
