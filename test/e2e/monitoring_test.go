package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/deploy/monitoring"
	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Monitoring test settings.
const (
	// monScrape is Prometheus's scrape and evaluation interval here.
	monScrape = time.Second
	// monWindow is the rate window the dashboard's $__rate_interval
	// becomes: several scrapes.
	monWindow = "30s"
	// monWarm is how long Prometheus scrapes before the queries run.
	monWarm = 8 * time.Second
	// monFloodPackets is each of the attacker's floods (a second's worth).
	monFloodPackets = 2000
)

// TestDashboardQueries runs Debian's Prometheus against the agents of a lab
// with the L7 gateway on its GPU hosts, after real AI traffic from two
// tenants (one over its token limit, one prompt with a secret) and a small
// flood, and evaluates every dashboard panel query and alerting rule of
// deploy/monitoring: each must name only exported metrics, and each panel
// must return at least one series.
func TestDashboardQueries(t *testing.T) {
	privtest.Tools(t, "prometheus")
	gpus := make([]lab.GPU, 3)
	for i := range gpus {
		gpus[i] = lab.GPU{TokensPerSecond: 400}
	}
	l := newLab(t, lab.Config{Prefix: "igm", GPUs: gpus,
		GPUAgentArgs: []string{"--gateway=true", "--gateway-listen", fmt.Sprintf(":%d", lab.GatewayPort)}})
	alice := lab.AITenant{Name: "alice", Key: newKey(t)}
	bob := lab.AITenant{Name: "bob", Key: newKey(t), TokensPerMinute: 150}
	o := standardPolicy()
	o.Name, o.GatewayVIP, o.LoadReports = "monitoring", true, true
	o.Gateway = lab.AIGateway(alice, bob)
	startAll(t, l, "monitoring", o)

	// Traffic: streamed and whole answers for alice, bob until refused, a
	// prompt with a cloud key, plain requests to the inference VIP and a
	// small bounded flood from the attacker.
	hc := dialer(t, l.Clients[0].NS).HTTPClient(true, 20*time.Second)
	ctx := ctxT(t, 60*time.Second)
	for i := 0; i < 6; i++ {
		r, err := lab.AIChat(ctx, hc, lab.GatewayURL(), alice.Key, "Tell me about GPUs.", i%2 == 0, 20)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("alice's request %d: %+v %v", i, r, err)
		}
	}
	refused := false
	for i := 0; i < 20 && !refused; i++ {
		r, err := lab.AIChat(ctx, hc, lab.GatewayURL(), bob.Key, strings.Repeat("many words for bob ", 10), false, 20)
		if err != nil {
			t.Fatalf("bob's request %d: %v", i, err)
		}
		refused = r.Status == http.StatusTooManyRequests
	}
	if !refused {
		t.Fatal("bob was never refused over his tokens-per-minute limit")
	}
	if r, err := lab.AIChat(ctx, hc, lab.GatewayURL(), alice.Key, "my key is AKIAIOSFODNN7EXAMPLE", false, 20); err != nil || r.Status == http.StatusOK {
		t.Fatalf("a prompt with a cloud key was not blocked: %+v %v", r, err)
	}
	if tally := lab.Requests(ctx, hc, []netip.Addr{lab.VIP4}, 30, 4); tally.Failed > 0 {
		t.Fatalf("plain requests failed: %d, first: %v", tally.Failed, tally.FirstErr)
	}
	fc := l.Attack(monFloodPackets, monFloodPackets, 2*time.Second)
	for i := 0; i < 2; i++ {
		if f := <-fc; f.Err != nil {
			t.Fatalf("%s flood: %v", f.Kind, f.Err)
		}
	}

	prom := startPrometheus(t, l)
	time.Sleep(monWarm)
	exported := prom.names(t)
	qs, err := monitoring.Queries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		for _, n := range monitoring.MetricNames(q.Expr) {
			if !exported[n] {
				t.Errorf("%s names %s, which no agent exports", q.Source, n)
			}
		}
		expr := monitoring.Concrete(q.Expr, monWindow)
		n, err := prom.query(expr)
		if err != nil {
			t.Errorf("%s: %v", q.Source, err)
			continue
		}
		if n == 0 && !q.Alert {
			t.Errorf("%s: no series for %s", q.Source, expr)
		}
	}
}

// prometheus is a Prometheus server this test started.
type promServer struct {
	base string
	hc   *http.Client
}

// startPrometheus relays each agent's metrics endpoint (loopback inside its
// namespace) to a loopback port of the test, and starts Prometheus with a
// scrape job per agent, its instance label the node's name.
func startPrometheus(t *testing.T, l *lab.Lab) *promServer {
	t.Helper()
	nodes := append([]lab.Node{l.Balancer}, l.GPUs...)
	mux := http.NewServeMux()
	for _, n := range nodes {
		hc := dialer(t, n.NS).HTTPClient(false, 5*time.Second)
		mux.HandleFunc("/nodes/"+n.Name+"/metrics", func(w http.ResponseWriter, r *http.Request) {
			resp, err := hc.Get("http://127.0.0.1:9464/metrics")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		})
	}
	relay := listenLoopback(t)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(relay) }()
	t.Cleanup(func() { _ = srv.Close() })

	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n", monScrape, monScrape)
	for _, n := range nodes {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    metrics_path: /nodes/%s/metrics\n    static_configs:\n      - targets: [%q]\n        labels: {instance: %s}\n",
			n.Name, n.Name, relay.Addr().String(), n.Name)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	webLn := listenLoopback(t)
	web := webLn.Addr().String()
	webLn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "prometheus", "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", web)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", tailBytes(b, 4000))
		}
	})
	p := &promServer{base: "http://" + web, hc: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := p.query(`up == 1`)
		if err == nil && n == len(nodes) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never scraped all %d agents (up == 1: %d series, %v)", len(nodes), n, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// query evaluates expr now and returns how many series it gave.
func (p *promServer) query(expr string) (int, error) {
	resp, err := p.hc.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []json.RawMessage
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", expr, r.Error)
	}
	return len(r.Data.Result), nil
}

// names is every metric name Prometheus has scraped.
func (p *promServer) names(t *testing.T) map[string]bool {
	t.Helper()
	resp, err := p.hc.Get(p.base + "/api/v1/label/__name__/values")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Data []string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]bool, len(r.Data))
	for _, n := range r.Data {
		m[n] = true
	}
	return m
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
