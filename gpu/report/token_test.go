package report

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/internal/fakeclock"
)

const testToken = "s3cret-load-report-token"

// A load report behind RequireToken answers 401 to a request with no
// token, a wrong one, one of the wrong length or scheme, and 200 to the
// right one.
func TestRequireToken(t *testing.T) {
	src := &countingSource{rep: kv(0.5, 0, 1)}
	srv := httptest.NewServer(RequireToken(testToken, Handler(src)))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong", "Bearer " + strings.ToUpper(testToken), http.StatusUnauthorized},
		{"prefix", "Bearer " + testToken[:len(testToken)-1], http.StatusUnauthorized},
		{"longer", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"basic scheme", "Basic " + testToken, http.StatusUnauthorized},
		{"huge", "Bearer " + strings.Repeat("a", 1<<16), http.StatusUnauthorized},
		{"right", "Bearer " + testToken, http.StatusOK},
		{"scheme case", "bearer " + testToken, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/load", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if n := src.reads.Load(); n != 2 {
		t.Errorf("report built %d times, want 2 (only for authorised requests)", n)
	}
}

// The poller sends PollerConfig.Token, so it observes a host that
// requires it; without the token the host is not observed.
func TestPollerSendsToken(t *testing.T) {
	src := &countingSource{rep: kv(0.3, 0, 1)}
	srv := httptest.NewServer(RequireToken(testToken, Handler(src)))
	t.Cleanup(srv.Close)
	for _, tok := range []string{"", testToken} {
		w, _ := score.NewWeighter(score.Config{})
		p, err := NewPoller(w, PollerConfig{Now: fakeclock.New(t0).Now, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SetTargets([]Target{{Name: "p/a", URL: srv.URL, Neutral: 100}}); err != nil {
			t.Fatal(err)
		}
		p.Round(context.Background())
		e := p.Status()["p/a"].Error
		if tok == "" && !strings.Contains(e, "401") {
			t.Errorf("without token: poll error %q, want a 401", e)
		}
		if tok != "" && e != "" {
			t.Errorf("with token: poll error %q", e)
		}
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("ok", "  "+testToken+"\n")); err != nil || tok != testToken {
		t.Fatalf("ReadTokenFile = %q, %v", tok, err)
	}
	for name, content := range map[string]string{
		"short": "abc\n", "empty": "\n", "inner space": "abcdefgh ijklmnopq",
		"huge": strings.Repeat("a", maxTokenBytes+1),
	} {
		if _, err := ReadTokenFile(write(name, content)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
