package agent

import (
	"net/http"
	"testing"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy/store"
)

// TestHistoryAcrossRestart uses the real state directory store: versions
// applied by one agent are history for the next, which restores the last
// and rolls back.
func TestHistoryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	dp := newFakeDataplane()
	s1, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ta := newTestAgentWith(t, FileStore{s1}, dp)
	var r1, r2 ApplyResult
	ta.call(t, "POST", "/v1/policy", policyDoc(100), &r1)
	ta.call(t, "POST", "/v1/policy", policyDoc(250), &r2)
	if r1.Version == "" || r2.Version == "" || r1.Version == r2.Version {
		t.Fatalf("versions %q %q", r1.Version, r2.Version)
	}
	ta.Close()
	s1.Close()

	s2, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	tb := newTestAgentWith(t, FileStore{s2}, dp)
	var st Status
	tb.call(t, "GET", "/v1/status", nil, &st)
	if st.Policy.Version != r2.Version {
		t.Fatalf("restarted agent runs %q, want %q", st.Policy.Version, r2.Version)
	}
	var res ApplyResult
	if code := tb.call(t, "POST", "/v1/policy/rollback?to=previous", nil, &res); code != http.StatusOK || res.Version != r1.Version {
		t.Fatalf("rollback: %d %+v", code, res)
	}
	var hist []PolicyVersion
	tb.call(t, "GET", "/v1/policy/history", nil, &hist)
	if len(hist) != 3 || hist[0].Version != r1.Version || !hist[0].Current || hist[1].Current {
		t.Fatalf("history %+v", hist)
	}
	var bs []api.Backend
	tb.call(t, "GET", "/v1/backends", nil, &bs)
	if bs[0].Weight != 100 {
		t.Fatalf("after rollback gpu1 weight %d", bs[0].Weight)
	}
	if code := tb.call(t, "POST", "/v1/policy/rollback?to="+r2.Version[:6], nil, &res); code != http.StatusOK || res.Version != r2.Version {
		t.Fatalf("rollback by prefix: %d %+v", code, res)
	}
}
