package gateway

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/test/mockllm"
)

// A streamed request's prompt tokens count against its backend as
// awaiting prefill from the attempt's start until its first event, and
// not after: the picker's load sees a long prompt the backend is still
// prefilling.
func TestPendingPromptTokensUntilFirstToken(t *testing.T) {
	m := newMock(t, mockllm.Config{TTFT: 400 * time.Millisecond, TokensPerSecond: 20})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	model, _ := h.g.cfg.Load().routes.Lookup(testModel)
	b := model.Routes[0].Pool.Backends[0]
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/v1/chat/completions",
		strings.NewReader(chatBody(strings.Repeat("word ", 500), `,"stream":true,"max_tokens":40`)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		done <- result{resp, err}
	}()
	deadline := time.Now().Add(waitDeadline)
	for b.PendingTokens() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := b.PendingTokens(); n < 500 {
		t.Fatalf("pending prompt tokens %d while prefilling a 500-word prompt", n)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	br := bufio.NewReader(r.resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	if n := b.PendingTokens(); n != 0 {
		t.Fatalf("pending prompt tokens %d after the first token", n)
	}
	if b.InFlight() != 1 {
		t.Fatalf("in flight %d while the stream goes on", b.InFlight())
	}
}
