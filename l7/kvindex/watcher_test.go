package kvindex

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/infergate/infergate/l7/kvevents"
	"github.com/infergate/infergate/policy"
)

// publisher is an engine's KV-event socket on a fixed address.
type publisher struct {
	sock   zmq4.Socket
	cancel context.CancelFunc
	seq    uint64
}

func startPublisher(t *testing.T, ep string) *publisher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := zmq4.NewPub(ctx)
	if err := s.Listen(ep); err != nil {
		cancel()
		t.Fatal(err)
	}
	return &publisher{sock: s, cancel: cancel}
}

func (p *publisher) store(t *testing.T, hs ...uint64) {
	t.Helper()
	b := kvevents.Batch{Events: []kvevents.Event{{Kind: kvevents.BlockStored, Hashes: hs, Tokens: make([]uint32, len(hs)), BlockSize: 1}}}
	payload, err := kvevents.Encode(&b)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.sock.Send(zmq4.NewMsgFrom(kvevents.Frames("", p.seq, payload)...))
	p.seq++
}

func (p *publisher) stop() { p.sock.Close(); p.cancel() }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The Watcher subscribes from the policy, survives the engine's restart
// (its stream goes stale after the grace, and the new subscription starts
// afresh without what the old engine stored), and a policy without the
// pool ends the subscription and forgets the backend.
func TestWatcherFollowsPublisher(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + ln.Addr().String()
	ln.Close()
	idx, err := New(Config{DownGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(idx, nil)
	c := &policy.Compiled{Pools: []policy.CompiledPool{{Name: "p",
		Backends: []policy.CompiledBackend{{Name: "b", Address: netip.MustParseAddr("127.0.0.1"), Port: 8000, Weight: 100}},
		KVEvents: &policy.PoolKVEvents{Endpoints: []policy.KVEventsEndpoint{{Backend: "b", Endpoint: ep}}, BlockSize: 16, Encoding: "cl100k_base"}}}}
	if err := w.SetPools(c); err != nil {
		t.Fatal(err)
	}
	if w.PromptHashes("p", []byte("x")) != nil || w.PromptHashes("other", make([]byte, 400)) != nil {
		t.Fatal("hashes for a prompt without a full block, or for a pool without events")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	pub := startPublisher(t, ep)
	eventually(t, "first stream live", func() bool { pub.store(t, 1, 2); return idx.Live("p/b") })
	if got := match(idx, []uint64{1, 2}, "p/b"); got[0] != 2 {
		t.Fatalf("match %v", got)
	}
	pub.stop()
	eventually(t, "stream down past its grace", func() bool { return !idx.Live("p/b") })

	pub = startPublisher(t, ep)
	defer pub.stop()
	eventually(t, "restarted stream live", func() bool { pub.store(t, 3); return idx.Live("p/b") })
	if got := match(idx, []uint64{1}, "p/b"); got[0] != 0 {
		t.Fatal("the restarted engine's stream kept the old engine's blocks")
	}

	if err := w.SetPools(&policy.Compiled{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "backend forgotten", func() bool { _, ok := idx.Stats().Backends["p/b"]; return !ok })
}
