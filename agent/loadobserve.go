package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
)

// Load observation bounds.
const (
	// maxObservedReportBytes matches the poller's own bound on a report.
	maxObservedReportBytes = report.DefaultMaxReportBytes
	// loadStaleAfter marks a backend's load stale in status, as the
	// weighter does when it stops trusting a report.
	loadStaleAfter = score.DefaultStaleness
)

// loadObserver is the load-report poller's HTTP transport: it passes every
// response through unchanged and keeps the last report of each target, so
// the local API can show per-backend GPU load without polling twice.
type loadObserver struct {
	next http.RoundTripper

	mu     sync.Mutex
	byURL  map[string]string // report URL -> BackendID
	latest map[string]observedLoad
}

type observedLoad struct {
	rep score.Report
	at  time.Time
}

func newLoadObserver(next http.RoundTripper) *loadObserver {
	return &loadObserver{next: next, byURL: map[string]string{}, latest: map[string]observedLoad{}}
}

// setTargets names the backend behind each URL.
func (o *loadObserver) setTargets(ts []report.Target) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byURL = make(map[string]string, len(ts))
	keep := map[string]bool{}
	for _, t := range ts {
		o.byURL[t.URL] = t.Name
		keep[t.Name] = true
	}
	for id := range o.latest {
		if !keep[id] {
			delete(o.latest, id)
		}
	}
}

func (o *loadObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	o.mu.Lock()
	id, ok := o.byURL[req.URL.String()]
	o.mu.Unlock()
	if !ok {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxObservedReportBytes+1))
	resp.Body.Close()
	// The poller sees exactly the bytes the host sent, errors included.
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{rerr}))
	if rerr != nil || len(body) > maxObservedReportBytes {
		return resp, nil
	}
	var rep score.Report
	if json.Unmarshal(body, &rep) == nil {
		o.mu.Lock()
		o.latest[id] = observedLoad{rep: rep, at: time.Now()}
		o.mu.Unlock()
	}
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}

// loads returns what status shows per backend.
func (o *loadObserver) loads() map[string]api.Load {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]api.Load, len(o.latest))
	for id, l := range o.latest {
		r := l.rep
		out[id] = api.Load{
			KVCacheUsage: r.KVCacheUsage, Running: r.RequestsRunning, Waiting: r.RequestsWaiting,
			GPUUtil: r.SMUtil, Stale: time.Since(l.at) > loadStaleAfter,
		}
	}
	return out
}
