package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
)

type staticSource struct{ r score.Report }

func (s staticSource) Report(context.Context) (score.Report, error) { return s.r, nil }

// TestLoadObserver: the poller, through the observing transport, still
// gets its weights, and status gets each backend's load.
func TestLoadObserver(t *testing.T) {
	rep := score.Report{Time: time.Now(), Healthy: true, Signals: score.HasKVCache | score.HasWaiting | score.HasRunning | score.HasUtil,
		KVCacheUsage: 0.75, RequestsRunning: 12, RequestsWaiting: 3, SMUtil: 0.9}
	srv := httptest.NewServer(report.Handler(staticSource{rep}))
	defer srv.Close()
	obs := newLoadObserver(http.DefaultTransport)
	w, err := score.NewWeighter(score.Config{})
	if err != nil {
		t.Fatal(err)
	}
	updates := 0
	p, err := report.NewPoller(w, report.PollerConfig{Client: &http.Client{Transport: obs, Timeout: time.Second},
		OnUpdate: func(report.Update) { updates++ }})
	if err != nil {
		t.Fatal(err)
	}
	ts := []report.Target{{Name: "gpus/g1", URL: srv.URL + "/load", Neutral: 100}}
	obs.setTargets(ts)
	if err := p.SetTargets(ts); err != nil {
		t.Fatal(err)
	}
	p.Round(context.Background())
	if st := p.Status()["gpus/g1"]; st.Error != "" {
		t.Fatalf("poller saw an error through the observer: %s", st.Error)
	}
	if updates == 0 {
		t.Fatal("no weight update")
	}
	got := obs.loads()["gpus/g1"]
	if got.KVCacheUsage != 0.75 || got.Running != 12 || got.Waiting != 3 || got.GPUUtil != 0.9 || got.Stale {
		t.Fatalf("observed load %+v", got)
	}
	obs.setTargets(nil)
	if len(obs.loads()) != 0 {
		t.Fatal("load of a removed target kept")
	}
}
