package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// postEncoded posts body with a Content-Encoding and returns the status
// and error code (if any).
func (h *harness) postEncoded(t *testing.T, encoding string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Encoding", encoding)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if resp.StatusCode != 200 {
		_, code = decodeError(t, b)
	}
	return resp.StatusCode, code
}

// TestCompressedBodies: a gzip body is decoded (the upstream gets it
// plain), bounded by the body limit however well it compresses; a corrupt
// one is a 400 and other codings are refused 415.
func TestCompressedBodies(t *testing.T) {
	m := newMock(t, mockllm.Config{KeepRequests: 2})
	c := basePolicy(pool("p", m))
	c.Gateway.MaxBodyBytes = 64 << 10
	h := newHarness(t, c, Options{})
	plain := chatBody("compressed hello", "")
	if status, code := h.postEncoded(t, "gzip", gzipped(t, []byte(plain))); status != 200 {
		t.Fatalf("gzip: %d %s", status, code)
	}
	up, _ := m.LastRequest()
	if !strings.Contains(up.Body, "compressed hello") || up.Header.Get("Content-Encoding") != "" {
		t.Fatalf("upstream got %v %q", up.Header, up.Body)
	}
	// 10 MB of one letter compresses to a few KB.
	bomb := gzipped(t, []byte(chatBody(strings.Repeat("a", 10<<20), "")))
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	if status, code := h.postEncoded(t, "gzip", bomb); status != http.StatusRequestEntityTooLarge || code != "request_too_large" {
		t.Fatalf("gzip bomb: %d %s", status, code)
	}
	if status, code := h.postEncoded(t, "gzip", []byte(plain)); status != 400 || code != "invalid_gzip" {
		t.Fatalf("not gzip: %d %s", status, code)
	}
	for _, enc := range []string{"zstd", "br", "gzip, gzip"} {
		if status, code := h.postEncoded(t, enc, []byte(plain)); status != http.StatusUnsupportedMediaType || code != "unsupported_content_encoding" {
			t.Fatalf("%s: %d %s", enc, status, code)
		}
	}
	if m.Stats().Total != 1 {
		t.Fatalf("upstream saw %d requests", m.Stats().Total)
	}
}

// TestMessageSizeLimit: the default per-message limit lets through any
// message that fits the default body limit, and a message over a set
// limit is refused 413 naming the setting.
func TestMessageSizeLimit(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	c.Gateway.Inspection.MaxMessageBytes = policy.DefaultMaxMessageBytes
	c.Gateway.MaxBodyBytes = policy.DefaultMaxBodyBytes
	h := newHarness(t, c, Options{})
	long := strings.Repeat("The quarterly report shows steady growth in every region. ", (2<<20)/58)
	if status, _, b := h.call(testKey, "/v1/chat/completions", chatBody(long, "")); status != 200 {
		t.Fatalf("2 MiB message under the defaults: %d %s", status, b[:min(len(b), 300)])
	}
	c = basePolicy(pool("p", m))
	c.Gateway.Inspection.MaxMessageBytes = 1024
	if err := h.g.Apply(c); err != nil {
		t.Fatal(err)
	}
	status, _, b := h.call(testKey, "/v1/chat/completions", chatBody(strings.Repeat("x", 2048), ""))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "maxMessageBytes") {
		t.Fatalf("%d %s", status, b)
	}
	if _, code := decodeError(t, b); code != "message_too_large" {
		t.Fatalf("code %q", code)
	}
}
