package mockllm

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/kvevents"
	"github.com/infergate/infergate/l7/kvindex"
)

// recorder is a kvevents.Sink keeping every batch.
type recorder struct{ batches chan kvevents.Batch }

func (r *recorder) Up(string)   {}
func (r *recorder) Down(string) {}
func (r *recorder) Apply(_ string, _ uint64, b *kvevents.Batch) {
	r.batches <- *b
}

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "tcp://" + ln.Addr().String()
}

func postOK(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s: status %d", url, resp.StatusCode)
	}
}

// The mock's prefix cache publishes, over a real ZeroMQ socket, the block
// hashes the gateway computes for the same prompt (kvindex.Hasher over the
// role-framed text), evicts beyond its capacity with BlockRemoved, and
// publishes AllBlocksCleared on Reset.
func TestKVEventsPublished(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(Config{})
	ep := freeTCP(t)
	kv, err := s.EnableKVEvents(ctx, KVEventsConfig{Listen: ep, BlockSize: 4, Blocks: 6})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	rec := &recorder{batches: make(chan kvevents.Batch, 64)}
	sub := &kvevents.Subscriber{Backend: "m", Endpoint: ep, Sink: rec}
	go sub.Run(ctx)

	h, _ := kvindex.NewHasher(4, "", "cl100k_base", 0)
	text := "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
	want := h.Hashes("\x1euser\x1f" + text)
	body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}]}`, text)
	// Until the subscription reaches the publisher, batches are dropped.
	var got kvevents.Batch
	deadline := time.After(10 * time.Second)
wait:
	for {
		kv.Reset()
		postOK(t, ts.URL+"/v1/chat/completions", body)
		select {
		case b := <-rec.batches:
			for len(b.Events) == 1 && b.Events[0].Kind == kvevents.AllBlocksCleared {
				b = <-rec.batches
			}
			got = b
			break wait
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no events")
		}
	}
	if len(want) < 3 || len(want) > 6 {
		t.Fatalf("%d blocks: the test wants 3 to 6 (capacity 6)", len(want))
	}
	if len(got.Events) != 1 {
		t.Fatalf("events %+v", got.Events)
	}
	st := got.Events[0]
	if st.Kind != kvevents.BlockStored || st.BlockSize != 4 || st.HasParent || len(st.Tokens) != 4*len(st.Hashes) {
		t.Fatalf("stored %+v", st)
	}
	if fmt.Sprint(st.Hashes) != fmt.Sprint(want) {
		t.Fatalf("hashes %x, want the gateway's %x", st.Hashes, want)
	}
	// The same prompt again is all hits; another one evicts the least
	// recently used blocks (capacity 6).
	hits0, _ := kv.KVStats()
	postOK(t, ts.URL+"/v1/chat/completions", body)
	if hits, _ := kv.KVStats(); hits-hits0 != int64(len(want)) {
		t.Fatalf("hits %d, want %d", hits-hits0, len(want))
	}
	other := fmt.Sprintf(`{"model":"m","prompt":%q}`, strings.Repeat("alpha beta gamma delta ", 8))
	postOK(t, ts.URL+"/v1/completions", other)
	var removed bool
	for !removed {
		select {
		case b := <-rec.batches:
			for _, e := range b.Events {
				removed = removed || e.Kind == kvevents.BlockRemoved
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no BlockRemoved past the capacity")
		}
	}
	kv.Reset()
	select {
	case b := <-rec.batches:
		if len(b.Events) != 1 || b.Events[0].Kind != kvevents.AllBlocksCleared {
			t.Fatalf("reset published %+v", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no AllBlocksCleared")
	}
}

// POST /control/speed slows every simulated duration by the factor; bad
// factors are refused.
func TestControlSpeed(t *testing.T) {
	s := New(Config{TTFT: 40 * time.Millisecond})
	s.EnableControl()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	postOK(t, ts.URL+"/control/speed", `{"factor": 0.25}`)
	if s.Speed() != 0.25 {
		t.Fatalf("speed %v", s.Speed())
	}
	start := time.Now()
	postOK(t, ts.URL+"/v1/chat/completions", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`)
	if d := time.Since(start); d < 160*time.Millisecond {
		t.Fatalf("a request at speed 0.25 with TTFT 40ms took %v", d)
	}
	for _, bad := range []string{`{"factor": 0}`, `{"factor": -1}`, `{"factor": 1000}`, `nope`} {
		resp, err := http.Post(ts.URL+"/control/speed", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d", bad, resp.StatusCode)
		}
	}
	if s.Speed() != 0.25 {
		t.Fatalf("a refused factor changed the speed to %v", s.Speed())
	}
	resp, err := http.Post(ts.URL+"/control/kv/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("kv reset without a prefix cache: status %d", resp.StatusCode)
	}
}
