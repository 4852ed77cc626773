package e2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// Live TTFT comparison (issue 6): three GPU hosts of very different
// capacity, open-loop Poisson arrivals, one new connection per streamed
// request, first with equal weights and then with weights from the hosts'
// load reports.
const (
	ttftRate      = 30.0 // requests per second, offered
	ttftWarmup    = 4 * time.Second
	ttftMeasure   = 8 * time.Second
	ttftTokens    = 20
	ttftReqTimout = 60 * time.Second
)

// ttftFleet: a fast, a middling and a slow host. Capacity in requests of
// ttftTokens per second: 8/(20/400)=160, 4/(20/200)=40, 2/(20/50)=5. At
// ttftRate an equal split gives the slow host twice what it can serve.
var ttftFleet = []lab.GPU{
	{TTFT: 20 * time.Millisecond, TokensPerSecond: 400, Batch: 8},
	{TTFT: 20 * time.Millisecond, TokensPerSecond: 200, Batch: 4},
	{TTFT: 20 * time.Millisecond, TokensPerSecond: 50, Batch: 2},
}

// TestTTFTGPUWeighting measures p50/p99 time to first token with equal
// weights and with GPU-load weights on the same fleet and load, and asserts
// the direction only: weighting by load must lower p99.
func TestTTFTGPUWeighting(t *testing.T) {
	if testing.Short() {
		t.Skip("live TTFT comparison: about 40 s")
	}
	l := newLab(t, lab.Config{Prefix: "igt", GPUs: ttftFleet})
	o := lab.PolicyOptions{Name: "equal", HealthCheck: true}
	startAll(t, l, "equal", o)
	// ttftRun returns once every request it started has finished, so
	// the next run starts on idle hosts.
	equal := ttftRun(t, l, "equal weights")

	o.Name, o.LoadReports = "gpu", true
	apply(t, l, o)
	gpu := ttftRun(t, l, "GPU-load weights")
	bs, err := l.Client(l.Balancer.Name).Backends(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Pool == "gpu-v4" {
			t.Logf("after the GPU-weighted run: %s weight %d", b.Name, b.Weight)
		}
	}
	t.Logf("p50 TTFT: equal %s, GPU-weighted %s; p99 TTFT: equal %s, GPU-weighted %s",
		equal.p50, gpu.p50, equal.p99, gpu.p99)
	if gpu.p99 >= equal.p99 {
		t.Errorf("GPU-load weighting did not lower p99 TTFT: %s vs %s with equal weights", gpu.p99, equal.p99)
	}
}

type ttftResult struct {
	p50, p99 time.Duration
	n        int
	byHost   map[string]int
}

// ttftRun offers ttftRate requests per second for ttftWarmup+ttftMeasure
// and summarises the requests started after the warm-up.
func ttftRun(t *testing.T, l *lab.Lab, label string) ttftResult {
	t.Helper()
	d := dialer(t, l.Clients[0].NS)
	hc := d.HTTPClient(false, ttftReqTimout)
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		mu     sync.Mutex
		ttfts  []time.Duration
		byHost = map[string]int{}
		failed int
		wg     sync.WaitGroup
	)
	start := time.Now()
	next := start
	for time.Since(start) < ttftWarmup+ttftMeasure {
		next = next.Add(time.Duration(rng.ExpFloat64() / ttftRate * float64(time.Second)))
		time.Sleep(time.Until(next))
		measured := time.Since(start) >= ttftWarmup
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, ttft, err := lab.Stream(context.Background(), hc, lab.VIP4, ttftTokens)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			if measured {
				ttfts = append(ttfts, ttft)
				byHost[a.Backend]++
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Errorf("%s: %d requests failed", label, failed)
	}
	if len(ttfts) == 0 {
		t.Fatalf("%s: no request measured", label)
	}
	slices.Sort(ttfts)
	r := ttftResult{p50: ttfts[len(ttfts)/2], p99: ttfts[len(ttfts)*99/100], n: len(ttfts), byHost: byHost}
	t.Logf("%s: %d requests measured, p50 TTFT %s, p99 %s, per host %v", label, r.n, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), byHost)
	return r
}
