package serve

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/kvindex"
	"github.com/infergate/infergate/l7/tokens"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// kvBackend is a mock whose prefix cache publishes KV events on loopback.
func kvBackend(t *testing.T) (backend, string) {
	t.Helper()
	b := newBackend(t, mockllm.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ep := "tcp://" + freeAddr(t)
	if _, err := b.EnableKVEvents(ctx, mockllm.KVEventsConfig{Listen: ep}); err != nil {
		t.Fatal(err)
	}
	return b, ep
}

// direct sends a chat completion straight to a backend, past the gateway.
func direct(t *testing.T, b backend, text string) {
	t.Helper()
	if st := chat(t, b.addr.String(), text); st != http.StatusOK {
		t.Fatalf("direct to %v: status %d", b.addr, st)
	}
}

func kvPolicy(bs []backend, eps []string) *policy.Compiled {
	c := testPolicy(bs, []uint32{100, 100})
	c.Gateway.Listen = "127.0.0.1:0"
	k := &policy.PoolKVEvents{BlockSize: 16, Encoding: "cl100k_base"}
	for i, ep := range eps {
		k.Endpoints = append(k.Endpoints, policy.KVEventsEndpoint{Backend: fmt.Sprintf("b%d", i), Endpoint: ep})
	}
	c.Pools[0].KVEvents = k
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a loaded machine (CI, 2 cores) is slow to start a subscription
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// warmUp sends prompts straight to b until the gateway's stream of its
// events is live. A subscription takes a moment to reach the publisher,
// and until then its events are dropped (ZeroMQ's slow joiner). Each try
// is a prompt the engine has not seen: an engine publishes only what
// changes its cache, so a repeated prompt, a full prefix hit, publishes
// nothing, and a stream whose first event was dropped would stay silent.
func warmUp(t *testing.T, idx *kvindex.Index, b backend, name string) {
	t.Helper()
	try := 0
	waitFor(t, name+"'s event stream", func() bool {
		try++
		direct(t, b, fmt.Sprintf("warm-up %s try %d ", name, try)+strings.Repeat("w ", 40))
		return idx.Live(name)
	})
}

func prompt(i int) string {
	return fmt.Sprintf("Conversation %d. ", i) + strings.Repeat(fmt.Sprintf("Context sentence number %d about topic %d. ", i, i*7), 12)
}

// The shipped assembly (serve.Server from a policy with kvEvents) follows
// the mock engines' KV events: a prompt whose prefix one engine computed
// (sent to it directly, so the gateway's approximate index has never seen
// it) goes to that engine, for every one of eight prompts spread over the
// two. By the approximate index alone each would have a one-in-two chance.
func TestKVEventsRouteToHolder(t *testing.T) {
	b0, ep0 := kvBackend(t)
	b1, ep1 := kvBackend(t)
	bs := []backend{b0, b1}
	s := newServer(t, Options{PollLoadReports: &LoadsConfig{}})
	if err := s.Apply(kvPolicy(bs, []string{ep0, ep1})); err != nil {
		t.Fatal(err)
	}
	if !s.Picking() {
		t.Fatal("a kvEvents pool is not picked by the load picker")
	}
	idx := s.Loads().KVIndex()
	// The engines and the gateway hash prompts with the cl100k tables,
	// built on first use: tens of seconds on a loaded 2-core machine,
	// which the waits below are not meant to time.
	if _, err := tokens.Get("cl100k_base"); err != nil {
		t.Fatal(err)
	}
	for i, b := range bs {
		warmUp(t, idx, b, fmt.Sprintf("p/b%d", i))
	}
	for i := range 8 {
		holder := bs[i%2]
		name := fmt.Sprintf("p/b%d", i%2)
		before := idx.Stats().Backends[name].Blocks
		direct(t, holder, prompt(i))
		waitFor(t, name+" storing the prompt's blocks", func() bool { return idx.Stats().Backends[name].Blocks > before })
		marker := fmt.Sprintf(" and now question %d?", i)
		if st := chat(t, s.Addr(), prompt(i)+marker); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
		last, ok := holder.LastRequest()
		if !ok || !strings.Contains(last.Body, fmt.Sprintf("question %d?", i)) {
			t.Fatalf("prompt %d did not go to b%d, whose engine holds its prefix", i, i%2)
		}
	}
	if hits, _ := s.Loads().Picker().PreciseStats(); hits < 8 {
		t.Fatalf("%d precise decisions, want 8", hits)
	}
}

// The warm-up's race made certain: the engine computes the warm-up's first
// prompt before the gateway subscribes, so that event is dropped, as it is
// when the prompt wins the race with the subscription. The stream still
// goes live, on a later, fresh prompt: a warm-up repeating one prompt
// (a full prefix hit, so nothing more published) would wait forever.
func TestKVEventsWarmUpAfterDroppedEvent(t *testing.T) {
	b, ep := kvBackend(t)
	direct(t, b, "warm-up p/b0 try 1 "+strings.Repeat("w ", 40))
	s := newServer(t, Options{PollLoadReports: &LoadsConfig{}})
	if err := s.Apply(kvPolicy([]backend{b}, []string{ep})); err != nil {
		t.Fatal(err)
	}
	warmUp(t, s.Loads().KVIndex(), b, "p/b0")
}

// With kvEvents configured but no engine publishing, the gateway serves
// as before: the approximate index keeps a repeated prompt on one backend,
// and nothing is decided by events.
func TestKVEventsAbsentFallsBack(t *testing.T) {
	bs := []backend{newBackend(t, mockllm.Config{}), newBackend(t, mockllm.Config{})}
	s := newServer(t, Options{PollLoadReports: &LoadsConfig{}})
	if err := s.Apply(kvPolicy(bs, []string{"tcp://" + freeAddr(t), "tcp://" + freeAddr(t)})); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		for range 3 {
			if st := chat(t, s.Addr(), prompt(i)); st != http.StatusOK {
				t.Fatalf("status %d", st)
			}
		}
	}
	// Each prompt's three sends went to one backend: both totals are
	// multiples of three.
	t0, t1 := bs[0].Stats().Total, bs[1].Stats().Total
	if t0+t1 != 18 || t0%3 != 0 {
		t.Fatalf("totals %d and %d: a repeated prompt moved between backends", t0, t1)
	}
	hits, miss := s.Loads().Picker().PreciseStats()
	if hits != 0 || miss == 0 {
		t.Fatalf("precise %d, fallback %d: want only fallbacks", hits, miss)
	}
}
