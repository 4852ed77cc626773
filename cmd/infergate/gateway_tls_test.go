package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/internal/testpki"
)

// "infergate gateway" with gateway.tls in its policy serves HTTPS, HTTP/2
// by ALPN, with the policy's certificate.
func TestGatewayCmdTLS(t *testing.T) {
	a, b := newLRHost(t, idleReport), newLRHost(t, idleReport)
	p := lrPolicy(t, a, b, false, a.loadURL, b.loadURL)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "gateway CA")
	certFile, keyFile := ca.Localhost(t).Write(t, dir, "gw")
	doc, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	doc = bytes.Replace(doc, []byte("  gateway:\n"), []byte("  gateway:\n    tls:\n      certFile: "+certFile+"\n      keyFile: "+keyFile+"\n"), 1)
	p = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(runGatewayCmd(t, "--config", p), "http://", "https://", 1)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	body, _ := json.Marshal(map[string]any{"model": lrModel, "max_tokens": 4,
		"messages": []map[string]string{{"role": "user", "content": "hello"}}})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+lrKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr, Timeout: lrWait}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d: %s", resp.Proto, resp.StatusCode, out)
	}
	// Plain HTTP on the TLS port is not served.
	if resp, err := http.Post(strings.Replace(base, "https://", "http://", 1)+"/v1/chat/completions", "application/json", bytes.NewReader(body)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on the TLS listener")
		}
	}
}

// With --load-report-token-file the standalone gateway's poller sends the
// token that GPU hosts require; without it the hosts refuse the poll
// before building a report.
func TestGatewayCmdLoadReportToken(t *testing.T) {
	const token = "load-report-token-for-tests-0123"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host := func() *lrHost {
		h := newLRHost(t, idleReport)
		srv := httptest.NewServer(report.RequireToken(token, report.Handler(h.reports)))
		t.Cleanup(srv.Close)
		h.loadURL = srv.URL + "/load"
		return h
	}
	for _, withToken := range []bool{false, true} {
		a, b := host(), host()
		p := lrPolicy(t, a, b, true, a.loadURL, b.loadURL)
		args := []string{"--config", p}
		if withToken {
			args = append(args, "--load-report-token-file", tokenFile)
		}
		gw := runGatewayCmd(t, args...)
		if err := lrChat(gw, "hi"); err != nil {
			t.Fatal(err)
		}
		if withToken {
			waitPolls(t, 2, a, b)
			continue
		}
		time.Sleep(300 * time.Millisecond) // several poll intervals
		if n := a.reports.polls.Load() + b.reports.polls.Load(); n != 0 {
			t.Fatalf("reports built %d times for a poller without the token", n)
		}
	}
}
