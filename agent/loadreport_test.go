package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
)

type staticReport struct{}

func (staticReport) Report(context.Context) (score.Report, error) {
	return score.Report{Healthy: true}, nil
}

// A GPU host with --load-report-token-file answers /load only to the
// bearer of that token; without one, serving beyond loopback is logged.
func TestLoadReportHandler(t *testing.T) {
	const token = "agent-load-report-token-0123456789"
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9400}
	h, err := loadReportHandler(Config{LoadReportTokenFile: tf}, report.Handler(staticReport{}), loop, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for auth, want := range map[string]int{"": 401, "Bearer wrong-token-0123456789": 401, "Bearer " + token: 200} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
	if tok, err := loadReportToken(Config{LoadReportTokenFile: tf}); err != nil || tok != token {
		t.Errorf("poller token %q, %v", tok, err)
	}
	if _, err := loadReportHandler(Config{LoadReportTokenFile: filepath.Join(t.TempDir(), "none")}, report.Handler(staticReport{}), loop, log); err == nil {
		t.Error("missing token file accepted")
	}

	if _, err := loadReportHandler(Config{}, report.Handler(staticReport{}), loop, log); err != nil || logs.Len() != 0 {
		t.Fatalf("loopback without token: %v, logged %q", err, logs.String())
	}
	wide := &net.TCPAddr{IP: net.IPv4zero, Port: 9400}
	if _, err := loadReportHandler(Config{}, report.Handler(staticReport{}), wide, log); err != nil || !strings.Contains(logs.String(), "without a token") {
		t.Fatalf("0.0.0.0 without token: %v, logged %q", err, logs.String())
	}
}
