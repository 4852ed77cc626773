package e2e

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// Restart test timing: streams of streamTokens tokens at the shared lab's
// pace last about 1.5 s each.
const (
	streamTokens    = 150
	streamWorkers   = 12
	killAfter       = 2 * time.Second
	restartAfter    = 2 * time.Second
	streamAfterBack = 3 * time.Second
)

// TestAgentKill9UnderStreams: kill -9 of the balancer's agent in the middle
// of a steady stream of long-lived streaming connections, then a restart
// that adopts the pinned maps and links: no stream breaks, no request
// fails (new connections opened while no agent runs included), and the
// counters carry on from where they were.
func TestAgentKill9UnderStreams(t *testing.T) {
	l := sharedLab(t)
	before := stats(t, l)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		ok, failed atomic.Int64
		errMu      sync.Mutex
		errs       []string
		wg         sync.WaitGroup
	)
	vips := []netip.Addr{lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2}
	for w := 0; w < streamWorkers; w++ {
		cl := l.Clients[w%len(l.Clients)]
		d := dialer(t, cl.NS)
		// Half the workers keep one connection for all their streams, half
		// open a new connection per stream.
		hc := d.HTTPClient(w%2 == 0, 30*time.Second)
		vip := vips[w%len(vips)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _, err := lab.Stream(context.Background(), hc, vip, streamTokens)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err.Error())
					errMu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(killAfter)
	mid := stats(t, l)
	if err := l.KillAgent(l.Balancer.Name, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	atKill := ok.Load()
	t.Logf("killed the balancer's agent with SIGKILL after %d streams", atKill)
	time.Sleep(restartAfter)
	without := ok.Load() - atKill
	if err := l.StartAgent(l.Balancer, "balancer", ""); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted it; %d streams completed while no agent ran", without)
	if without == 0 {
		t.Errorf("no stream completed while the agent was down: the data plane stalled")
	}
	time.Sleep(streamAfterBack)
	stop()
	wg.Wait()
	after := stats(t, l)
	t.Logf("streams: %d completed, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d streams failed across the agent's crash and restart; first: %s", failed.Load(), errs[0])
	}
	if ok.Load() < streamWorkers {
		t.Fatalf("only %d streams completed", ok.Load())
	}
	// Counters carried on: nothing went backwards, and traffic after the
	// restart added to them.
	for _, v := range after.VIPs {
		var was uint64
		for _, m := range mid.VIPs {
			if m.Name == v.Name {
				was = m.Packets
			}
		}
		if v.Packets <= was {
			t.Errorf("VIP %s packets %d after the restart, %d before the kill: counters reset or stalled", v.Name, v.Packets, was)
		}
	}
	if after.Verdicts["tx"] <= mid.Verdicts["tx"] || mid.Verdicts["tx"] <= before.Verdicts["tx"] {
		t.Errorf("tx verdicts before %d, at the kill %d, after the restart %d: want them rising", before.Verdicts["tx"], mid.Verdicts["tx"], after.Verdicts["tx"])
	}
	log, err := os.ReadFile(l.AgentLog(l.Balancer.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "adopting pinned maps") {
		t.Errorf("the restarted agent did not say it adopted the pinned maps")
	}
	st, err := l.Client(l.Balancer.Name).Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range st.Interfaces {
		if !i.Attached {
			t.Errorf("after the restart %s is not attached: %+v", i.Name, i)
		}
	}
}
