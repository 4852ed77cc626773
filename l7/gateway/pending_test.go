package gateway

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/test/mockllm"
)

// A streamed request's prompt tokens count against its backend as
// awaiting prefill from the attempt's start until its first event, and
// not after: the picker's load sees a long prompt the backend is still
// prefilling.
func TestPendingPromptTokensUntilFirstToken(t *testing.T) {
	pendingUntilFirstToken(t, Options{}, 500, 600)
}

// hitPicker picks backend 0 and says it holds fraction hit of the prompt.
type hitPicker struct{ hit float64 }

func (hitPicker) Pick(string, []*route.Backend) int               { return 0 }
func (hitPicker) PickPrefix(string, []*route.Backend, []byte) int { return 0 }
func (p hitPicker) PickPrefixHit(string, []*route.Backend, []byte) (int, float64) {
	return 0, p.hit
}

// The part of the prompt the picker knows its backend holds cached is not
// counted as pending: the backend will not prefill it. With three
// quarters held, a 500-word prompt (some 500 tokens) counts about 125.
func TestPendingLeavesOutTheCachedPart(t *testing.T) {
	pendingUntilFirstToken(t, Options{Picker: hitPicker{hit: 0.75}}, 100, 160)
}

// pendingUntilFirstToken streams a 500-word prompt through a gateway
// built with opts and checks that its backend's pending prompt tokens are
// within [lo, hi] before the first token and 0 after.
func pendingUntilFirstToken(t *testing.T, opts Options, lo, hi int64) {
	t.Helper()
	m := newMock(t, mockllm.Config{TTFT: 400 * time.Millisecond, TokensPerSecond: 20})
	h := newHarness(t, basePolicy(pool("p", m)), opts)
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
	if n := b.PendingTokens(); n < lo || n > hi {
		t.Fatalf("pending prompt tokens %d while prefilling a 500-word prompt, want %d to %d", n, lo, hi)
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
