package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/internal/syncbuf"
	"github.com/infergate/infergate/l7/pick"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

const (
	lrKey   = "sk-load-reports-test-0123456789"
	lrModel = "llama-3.1-8b"
	// lrRequests per measured split, sent by lrWorkers at once: enough that
	// an even split lands within 30-70% with overwhelming probability
	// (binomial sd ~6 of 160), few enough to take well under a second.
	lrRequests = 160
	lrWorkers  = 4
	// lrPollInterval is the fastest the poller allows, so the in-process
	// reload test converges quickly.
	lrPollInterval = 50 * time.Millisecond
	lrWait         = 10 * time.Second
	// lrWeightRatio: the weight ratio at which the weighted two choices,
	// with lrWorkers requests in flight, send nearly all to the heavier.
	lrWeightRatio = 10
)

// Reports a GPU host's agent would serve: one host with its KV cache full
// and a deep queue, one nearly idle.
var (
	saturatedReport = score.Report{Healthy: true, Signals: score.HasKVCache | score.HasWaiting | score.HasRunning,
		KVCacheUsage: 0.99, RequestsRunning: 64, RequestsWaiting: 40, Capacity: 1}
	idleReport = score.Report{Healthy: true, Signals: score.HasKVCache | score.HasWaiting | score.HasRunning,
		KVCacheUsage: 0.02, Capacity: 1}
)

// fixedSource serves one report, stamped now, through report.Handler (the
// agent's own load report endpoint), counting polls.
type fixedSource struct {
	rep   score.Report
	polls atomic.Int64
}

func (f *fixedSource) Report(context.Context) (score.Report, error) {
	f.polls.Add(1)
	r := f.rep
	r.Time = time.Now()
	return r, nil
}

// lrHost is a mock inference server plus a load report endpoint.
type lrHost struct {
	llm     *mockllm.Server
	addr    string // host:port of the inference server
	reports *fixedSource
	loadURL string
}

func newLRHost(t *testing.T, rep score.Report) *lrHost {
	t.Helper()
	h := &lrHost{llm: mockllm.New(mockllm.Config{Name: lrModel, TTFT: 2 * time.Millisecond, MaxTokens: 4}),
		reports: &fixedSource{rep: rep}}
	llm := httptest.NewServer(h.llm.Handler())
	t.Cleanup(llm.Close)
	h.addr = strings.TrimPrefix(llm.URL, "http://")
	mux := http.NewServeMux()
	mux.Handle("/load", report.Handler(h.reports))
	lr := httptest.NewServer(mux)
	t.Cleanup(lr.Close)
	h.loadURL = lr.URL + "/load"
	return h
}

// lrPolicy is a policy with pool "gpu" of backends a and b, whose load
// reports come from reportA and reportB.
func lrPolicy(t *testing.T, a, b *lrHost, loadReports bool, reportA, reportB string) string {
	t.Helper()
	hash := sha256.Sum256([]byte(lrKey))
	backend := func(name, addr, url string) string {
		host, port, _ := strings.Cut(addr, ":")
		return fmt.Sprintf("        - name: %s\n          address: %s\n          port: %s\n          loadReportURL: %s\n", name, host, port, url)
	}
	doc := `apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: load-reports
spec:
  pools:
    - name: gpu
      loadReports: ` + fmt.Sprint(loadReports) + `
      backends:
` + backend("a", a.addr, reportA) + backend("b", b.addr, reportB) + `  gateway:
    tenants:
      - name: acme
    keys:
      - name: k
        tenant: acme
        hash: sha256:` + hex.EncodeToString(hash[:]) + `
    models:
      - name: ` + lrModel + `
        encoding: o200k_base
        routes:
          - pool: gpu
`
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// split sends lrRequests chat requests with short distinct prompts (below
// one prefix-affinity block, so only load steers them) from lrWorkers
// clients at once, and returns how many each backend served.
func split(t *testing.T, gwURL string, a, b *lrHost) (na, nb int64) {
	t.Helper()
	a0, b0 := a.llm.Stats().Total, b.llm.Stats().Total
	var next atomic.Int64
	var wg sync.WaitGroup
	for range lrWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > lrRequests {
					return
				}
				if err := lrChat(gwURL, fmt.Sprintf("q%d", i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return a.llm.Stats().Total - a0, b.llm.Stats().Total - b0
}

func lrChat(gwURL, prompt string) error {
	body, _ := json.Marshal(map[string]any{"model": lrModel, "max_tokens": 4,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, err := http.NewRequest(http.MethodPost, gwURL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+lrKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, out)
	}
	return nil
}

var listeningRE = regexp.MustCompile(`msg="gateway listening" addr=(\S+)`)

// runGatewayCmd runs "infergate gateway" in-process on a free loopback
// port and returns its base URL; the command stops at cleanup.
func runGatewayCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncbuf.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(append([]string{"gateway", "--listen", "127.0.0.1:0"}, args...))
	cmd.SetOut(io.Discard)
	cmd.SetErr(&logs)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway command: %v", err)
			}
		case <-time.After(lrWait):
			t.Error("gateway command did not stop")
		}
	})
	deadline := time.Now().Add(lrWait)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("gateway command ended: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("gateway command did not start listening:\n%s", logs.String())
	return ""
}

// waitPolls waits until every host's report has been polled n times.
func waitPolls(t *testing.T, n int64, hosts ...*lrHost) {
	t.Helper()
	deadline := time.Now().Add(lrWait)
	for _, h := range hosts {
		for h.reports.polls.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("load report %s polled %d times, want %d", h.loadURL, h.reports.polls.Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// The standalone gateway command polls the load reports of a pool with
// loadReports on and sends new requests mostly to the idle backend; with
// --load-reports=false it polls nothing and splits evenly.
func TestGatewayCmdLoadReports(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		busy, idle := newLRHost(t, saturatedReport), newLRHost(t, idleReport)
		url := runGatewayCmd(t, "--config", lrPolicy(t, busy, idle, true, busy.loadURL, idle.loadURL))
		// A second poll of each host starts only after the first round's
		// reports were all fed to the weighter.
		waitPolls(t, 2, busy, idle)
		nb, ni := split(t, url, busy, idle)
		t.Logf("load reports on: saturated %d, idle %d", nb, ni)
		if ni+nb != lrRequests || ni < lrRequests*9/10 {
			t.Fatalf("saturated backend got %d, idle %d of %d: want at least 90%% on the idle one", nb, ni, lrRequests)
		}
	})

	t.Run("off", func(t *testing.T) {
		busy, idle := newLRHost(t, saturatedReport), newLRHost(t, idleReport)
		url := runGatewayCmd(t, "--config", lrPolicy(t, busy, idle, true, busy.loadURL, idle.loadURL), "--load-reports=false")
		nb, ni := split(t, url, busy, idle)
		t.Logf("load reports off: saturated %d, idle %d", nb, ni)
		if ni+nb != lrRequests || nb < lrRequests*3/10 || ni < lrRequests*3/10 {
			t.Fatalf("saturated backend got %d, idle %d of %d: want an even split (30-70%% each)", nb, ni, lrRequests)
		}
		if n := busy.reports.polls.Load() + idle.reports.polls.Load(); n != 0 {
			t.Fatalf("load reports polled %d times with --load-reports=false", n)
		}
	})
}

// "gateway -f" takes the policy like every other command does.
func TestGatewayCmdFilenameFlag(t *testing.T) {
	busy, idle := newLRHost(t, saturatedReport), newLRHost(t, idleReport)
	url := runGatewayCmd(t, "-f", lrPolicy(t, busy, idle, false, busy.loadURL, idle.loadURL), "--load-reports=false")
	if nb, ni := split(t, url, busy, idle); nb+ni != lrRequests {
		t.Fatalf("%d + %d of %d requests served", nb, ni, lrRequests)
	}
}

// newLRGateway builds the gateway as the command does and serves it on
// loopback, polling every lrPollInterval until cleanup.
func newLRGateway(t *testing.T, policyPath string, loadReports bool) (*standaloneGateway, string) {
	t.Helper()
	c, err := loadGatewayPolicy(policyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	sg, err := newStandaloneGateway(c, standaloneOptions{LoadReports: loadReports, PollInterval: lrPollInterval,
		Registry: prometheus.NewRegistry(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sg.Handler())
	t.Cleanup(func() {
		ts.Close()
		sctx, scancel := context.WithTimeout(context.Background(), lrWait)
		defer scancel()
		_ = sg.Shutdown(sctx)
	})
	return sg, ts.URL
}

// applyFile reloads the gateway from a policy file, as SIGHUP does.
func applyFile(t *testing.T, sg *standaloneGateway, path string) {
	t.Helper()
	c, err := loadGatewayPolicy(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := sg.Apply(c); err != nil {
		t.Fatal(err)
	}
}

// waitHeavier waits until the weighter's current weight of backend heavy
// in pool gpu is above lrWeightRatio times light's (the two reports score
// about 98 and 5 once the smoothing has caught up), and until the picker's
// snapshot of the weights has expired.
func waitHeavier(t *testing.T, sg *standaloneGateway, heavy, light string) {
	t.Helper()
	deadline := time.Now().Add(lrWait)
	for {
		ws := sg.Loads().Current()
		h, l := ws[report.TargetID("gpu", heavy)], ws[report.TargetID("gpu", light)]
		if !h.Draining && !l.Draining && h.Weight > lrWeightRatio*l.Weight {
			time.Sleep(pick.DefaultWeightsTTL)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("weights %+v: want %s above %d times %s", ws, heavy, lrWeightRatio, light)
		}
		time.Sleep(lrPollInterval)
	}
}

// A reload re-aims the poller: when the policy swaps which report each
// backend has, traffic follows the swap; when it turns loadReports off for
// the pool, the split is even again although the poller still runs.
func TestGatewayReloadRetargetsLoadReports(t *testing.T) {
	a, b := newLRHost(t, saturatedReport), newLRHost(t, idleReport)
	sg, url := newLRGateway(t, lrPolicy(t, a, b, true, a.loadURL, b.loadURL), true)
	if sg.Loads() == nil {
		t.Fatal("no poller for a policy with loadReports on")
	}
	waitHeavier(t, sg, "b", "a")
	if na, nb := split(t, url, a, b); nb < lrRequests*9/10 {
		t.Fatalf("a (saturated) got %d, b (idle) %d: want at least 90%% on b", na, nb)
	}

	applyFile(t, sg, lrPolicy(t, a, b, true, b.loadURL, a.loadURL))
	waitHeavier(t, sg, "a", "b")
	if na, nb := split(t, url, a, b); na < lrRequests*9/10 {
		t.Fatalf("after the reload a (now idle) got %d, b (now saturated) %d: want at least 90%% on a", na, nb)
	}

	applyFile(t, sg, lrPolicy(t, a, b, false, b.loadURL, a.loadURL))
	if ts := report.TargetsFromPolicy(mustLoad(t, lrPolicy(t, a, b, false, b.loadURL, a.loadURL))); len(ts) != 0 {
		t.Fatalf("targets %+v for a pool with loadReports off", ts)
	}
	if na, nb := split(t, url, a, b); na < lrRequests*3/10 || nb < lrRequests*3/10 {
		t.Fatalf("with loadReports off a got %d, b %d: want an even split (30-70%% each)", na, nb)
	}
}

func mustLoad(t *testing.T, path string) *policy.Compiled {
	t.Helper()
	c, err := loadGatewayPolicy(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A gateway whose policy has no pool with loadReports on, or run with
// load reports off, has no poller and no picker: routing stays the plain
// power of two choices without assembling prompts.
func TestGatewayNoLoadReportsNoPoller(t *testing.T) {
	a, b := newLRHost(t, saturatedReport), newLRHost(t, idleReport)
	for _, tc := range []struct {
		name        string
		policyOn    bool
		flagOn      bool
		wantPolling bool
	}{{"policy-off", false, true, false}, {"flag-off", true, false, false}, {"both-on", true, true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, lrPolicy(t, a, b, tc.policyOn, a.loadURL, b.loadURL))
			sg, err := newStandaloneGateway(c, standaloneOptions{LoadReports: tc.flagOn, Registry: prometheus.NewRegistry(), Listen: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			defer sg.Shutdown(context.Background())
			if got := sg.Loads() != nil; got != tc.wantPolling {
				t.Fatalf("poller present %v, want %v", got, tc.wantPolling)
			}
			if got := sg.Picking(); got != tc.wantPolling {
				t.Fatalf("picker present %v, want %v", got, tc.wantPolling)
			}
		})
	}
}
