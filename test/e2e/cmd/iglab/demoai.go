package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/test/e2e/lab"
)

// The AI part of the demo: OpenAI-style requests of two tenants through the
// GPU hosts' L7 gateways (behind the balancer's VIP), a prompt carrying a
// secret, a tenant over its tokens-per-minute limit, and one GPU host made
// busy mid-run whose load report lowers its weight and its share of new
// flows.
const (
	demoAIRequests     = 24  // per tenant
	demoAIMaxTokens    = 24  // per answer
	demoBobTPM         = 900 // bob's tokens per minute: enough for a few requests
	demoBobTries       = 30
	demoBusyStreams    = 24 // long streams that fill the busy host's batch
	demoBusyTokens     = 600
	demoBusyWait       = 20 * time.Second
	demoShareRequests  = 120
	demoAIRequestLimit = 30 * time.Second
	// demoSecret is AWS's documented example access key id.
	demoSecret = "AKIAIOSFODNN7EXAMPLE"
)

// demoGPUs: three hosts; the third has a small batch so a few long streams
// fill it.
var demoGPUs = []lab.GPU{
	{TTFT: 5 * time.Millisecond, TokensPerSecond: 2000, Batch: 32},
	{TTFT: 10 * time.Millisecond, TokensPerSecond: 2000, Batch: 32},
	{TTFT: 20 * time.Millisecond, TokensPerSecond: 150, Batch: 4},
}

var (
	demoAlice = lab.AITenant{Name: "alice", Key: "ig-demo-alice-key-0001"}
	demoBob   = lab.AITenant{Name: "bob", Key: "ig-demo-bob-key-0002", TokensPerMinute: demoBobTPM}
)

// aiSummary is what the AI part saw.
type aiSummary struct {
	sent        map[string]int // tenant -> requests answered 200
	secret      lab.AIResult
	bobAccepted int
	bobRefused  lab.AIResult
	// gateway-side counts, summed over the GPU hosts' metrics
	tokensIn, tokensOut, cost map[string]float64
	busy                      string
	before, during            map[string]share
	weightsBefore, weightsNow map[string]uint32
}

type share struct{ flows, total uint64 }

func runAI(ctx context.Context, l *lab.Lab, step func(string, ...any)) (*aiSummary, error) {
	s := &aiSummary{sent: map[string]int{}}
	d, err := lab.NewDialer(l.Clients[0].NS)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	hc := d.HTTPClient(true, demoAIRequestLimit)
	url := lab.GatewayURL()

	step("alice and bob send %d chat requests each (API keys, half streamed) to the gateways at %s", demoAIRequests, url)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, t := range []lab.AITenant{demoAlice, demoBob} {
		n := demoAIRequests
		if t.TokensPerMinute > 0 {
			n = 2 // bob's limit is shown below
		}
		wg.Add(1)
		go func(t lab.AITenant, n int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				r, err := lab.AIChat(ctx, hc, url, t.Key, "Summarise why GPUs need load balancing.", i%2 == 0, demoAIMaxTokens)
				mu.Lock()
				if err == nil && r.Status == http.StatusOK {
					s.sent[t.Name]++
				} else if firstErr == nil {
					firstErr = fmt.Errorf("%s: status %d %s %v", t.Name, r.Status, r.ErrorCode, err)
				}
				mu.Unlock()
			}
		}(t, n)
	}
	wg.Wait()
	if firstErr != nil {
		step("  first failure: %v", firstErr)
	}
	step("  answered: alice %d, bob %d", s.sent["alice"], s.sent["bob"])

	step("alice sends a prompt carrying a cloud access key")
	if s.secret, err = lab.AIChat(ctx, hc, url, demoAlice.Key, "deploy with key "+demoSecret+" please", false, demoAIMaxTokens); err != nil {
		return nil, err
	}
	step("  status %d (%s): it never reached a GPU", s.secret.Status, s.secret.ErrorCode)

	step("bob (%d tokens per minute) keeps sending long prompts", demoBobTPM)
	long := strings.Repeat("Please consider this rather long question about scheduling. ", 8)
	for i := 0; i < demoBobTries; i++ {
		r, err := lab.AIChat(ctx, hc, url, demoBob.Key, long, false, demoAIMaxTokens)
		if err != nil {
			return nil, err
		}
		if r.Status == http.StatusTooManyRequests {
			s.bobRefused = r
			break
		}
		if r.Status == http.StatusOK {
			s.bobAccepted++
		}
	}
	step("  %d more accepted, then status %d (%s)", s.bobAccepted, s.bobRefused.Status, s.bobRefused.ErrorCode)

	if err := s.readGatewayMetrics(ctx, l); err != nil {
		return nil, err
	}
	if err := s.busyHost(ctx, l, step); err != nil {
		return nil, err
	}
	return s, nil
}

// busyHost measures each backend's share of new flows, fills the last GPU
// host's batch with long streams sent on the host itself, waits for its load
// report to lower its weight, and measures again.
func (s *aiSummary) busyHost(ctx context.Context, l *lab.Lab, step func(string, ...any)) error {
	bal := l.Client(l.Balancer.Name)
	busy := l.GPUs[len(l.GPUs)-1]
	s.busy = busy.Name
	cd, err := lab.NewDialer(l.Clients[1].NS)
	if err != nil {
		return err
	}
	defer cd.Close()
	measure := func() (map[string]share, error) {
		b0, err := bal.Backends(ctx)
		if err != nil {
			return nil, err
		}
		lab.Requests(ctx, cd.HTTPClient(false, demoRequestTimeout), []netip.Addr{lab.VIP4}, demoShareRequests, demoConcurrency)
		b1, err := bal.Backends(ctx)
		if err != nil {
			return nil, err
		}
		return flowShares(b0, b1, "gpu-v4"), nil
	}
	step("measuring each GPU host's share of %d new connections to %s", demoShareRequests, lab.VIP4)
	if s.before, err = measure(); err != nil {
		return err
	}
	s.weightsBefore = weights(mustBackends(ctx, bal), "gpu-v4")

	step("%s gets busy: %d long generations started on the host itself fill its batch", busy.Name, demoBusyStreams)
	bd, err := lab.NewDialer(busy.NS)
	if err != nil {
		return err
	}
	defer bd.Close()
	bctx, stopBusy := context.WithCancel(ctx)
	defer stopBusy()
	bhc := bd.HTTPClient(false, time.Minute)
	local := fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", lab.ServicePort)
	for i := 0; i < demoBusyStreams; i++ {
		go func() { _, _, _ = lab.StreamURL(bctx, bhc, local, "", demoBusyTokens) }()
	}
	deadline := time.Now().Add(demoBusyWait)
	for time.Now().Before(deadline) {
		w := weights(mustBackends(ctx, bal), "gpu-v4")
		if w[busy.Name] < s.weightsBefore[busy.Name]/2 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.weightsNow = weights(mustBackends(ctx, bal), "gpu-v4")
	step("  weights from the load reports: before %s, now %s", fmtWeights(s.weightsBefore), fmtWeights(s.weightsNow))
	if s.during, err = measure(); err != nil {
		return err
	}
	return nil
}

func mustBackends(ctx context.Context, c *api.Client) []api.Backend {
	bs, _ := c.Backends(ctx)
	return bs
}

func weights(bs []api.Backend, pool string) map[string]uint32 {
	m := map[string]uint32{}
	for _, b := range bs {
		if b.Pool == pool {
			m[b.Name] = b.Weight
		}
	}
	return m
}

func fmtWeights(m map[string]uint32) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// flowShares is each backend's new flows between two readings.
func flowShares(b0, b1 []api.Backend, pool string) map[string]share {
	before := map[string]uint64{}
	for _, b := range b0 {
		if b.Pool == pool {
			before[b.Name] = b.NewFlows
		}
	}
	out := map[string]share{}
	var total uint64
	for _, b := range b1 {
		if b.Pool == pool {
			n := b.NewFlows - before[b.Name]
			out[b.Name] = share{flows: n}
			total += n
		}
	}
	for k, v := range out {
		v.total = total
		out[k] = v
	}
	return out
}

// readGatewayMetrics sums what the gateways themselves counted, per tenant:
// input and output tokens and cost, from each GPU host agent's /metrics.
func (s *aiSummary) readGatewayMetrics(ctx context.Context, l *lab.Lab) error {
	s.tokensIn, s.tokensOut, s.cost = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, g := range l.GPUs {
		d, err := lab.NewDialer(g.NS)
		if err != nil {
			return err
		}
		fams, err := scrape(ctx, d.HTTPClient(false, 5*time.Second), "http://127.0.0.1:9464/metrics")
		d.Close()
		if err != nil {
			return fmt.Errorf("metrics of %s: %w", g.Name, err)
		}
		for _, m := range fams["gen_ai_client_token_usage"].GetMetric() {
			t, typ := label(m, "tenant"), label(m, "gen_ai_token_type")
			v := float64(m.GetHistogram().GetSampleSum())
			if typ == "input" {
				s.tokensIn[t] += v
			} else {
				s.tokensOut[t] += v
			}
		}
		for _, m := range fams["infergate_cost_usd_total"].GetMetric() {
			s.cost[label(m, "tenant")] += m.GetCounter().GetValue()
		}
	}
	return nil
}

func scrape(ctx context.Context, hc *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func (s *aiSummary) print() {
	fmt.Println("AI requests through the L7 gateways (counted by the gateways themselves):")
	fmt.Printf("  %-6s %8s %10s %11s %10s\n", "tenant", "answered", "tokens in", "tokens out", "cost USD")
	for _, t := range []string{"alice", "bob"} {
		fmt.Printf("  %-6s %8d %10.0f %11.0f %10.6f\n", t, s.sent[t]+map[string]int{"bob": s.bobAccepted}[t],
			s.tokensIn[t], s.tokensOut[t], s.cost[t])
	}
	fmt.Printf("  price: $%.2f per million input tokens, $%.2f per million output tokens\n", lab.AIInputPerMTok, lab.AIOutputPerMTok)
	fmt.Printf("  a prompt carrying a cloud key: status %d, code %q (inspection rule %s blocks it)\n",
		s.secret.Status, s.secret.ErrorCode, lab.SecretRule)
	fmt.Printf("  bob over %d tokens/minute: status %d, code %q\n", demoBobTPM, s.bobRefused.Status, s.bobRefused.ErrorCode)
	fmt.Printf("GPU host %s made busy mid-run (weights from the GPU hosts' load reports):\n", s.busy)
	names := make([]string, 0, len(s.before))
	for k := range s.before {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Printf("  %-6s %14s %14s\n", "host", "before", "while busy")
	for _, n := range names {
		fmt.Printf("  %-6s %4d  %5.1f%%    %4d  %5.1f%%   of new flows (weight %d -> %d)\n", n,
			s.before[n].flows, pct(s.before[n]), s.during[n].flows, pct(s.during[n]), s.weightsBefore[n], s.weightsNow[n])
	}
}

func pct(s share) float64 {
	if s.total == 0 {
		return 0
	}
	return 100 * float64(s.flows) / float64(s.total)
}
