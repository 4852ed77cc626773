package mockllm

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/infergate/infergate/l7/kvevents"
	"github.com/infergate/infergate/l7/kvindex"
	"github.com/infergate/infergate/l7/tokens"
)

// KVEventsConfig turns on the mock's prefix-cache model and its KV-cache
// events, published as vLLM publishes them (l7/kvevents), so a gateway
// following them takes the same path it takes with vLLM.
type KVEventsConfig struct {
	// Listen is the PUB socket's address, tcp://host:port (vLLM's
	// default is tcp://*:5557).
	Listen string
	// BlockSize is tokens per block (default 16); Blocks the cache's
	// capacity in blocks (default 4096), least recently used evicted.
	BlockSize, Blocks int
	// Encoding tokenizes prompts (default cl100k_base); HashSeed is the
	// engine's PYTHONHASHSEED.
	Encoding, HashSeed string
	// PrefillPerBlock is the prefill time of each block not found cached,
	// spent holding the batch slot before the time to first token: what
	// a cache hit saves.
	PrefillPerBlock time.Duration
}

// KVCache is the mock's prefix cache: the blocks of the prompts it
// served, hashed as vLLM hashes them (l7/kvindex.Hasher over the prompt
// text the gateway assembles: each chat message's role and content, or
// the completion prompt).
type KVCache struct {
	hasher  *kvindex.Hasher
	pub     zmq4.Socket
	blocks  int
	prefill time.Duration

	mu   sync.Mutex
	lru  *list.List // of uint64 block hashes, most recent at front
	byH  map[uint64]*list.Element
	seq  uint64
	hits atomic.Int64 // blocks found cached
	miss atomic.Int64 // blocks computed
}

type serverExt struct {
	kv    atomic.Pointer[KVCache]
	speed atomic.Uint64 // float64 bits of the speed factor; 0 means 1
}

// EnableKVEvents starts the prefix-cache model and its publisher, which
// stops when ctx ends, and serves its counters at GET /debug/kv. Call it
// once per Server.
func (s *Server) EnableKVEvents(ctx context.Context, cfg KVEventsConfig) (*KVCache, error) {
	if err := kvevents.CheckEndpoint(cfg.Listen); err != nil {
		return nil, err
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 16
	}
	if cfg.Blocks <= 0 {
		cfg.Blocks = 4096
	}
	if cfg.Encoding == "" {
		cfg.Encoding = tokens.CL100K
	}
	h, err := kvindex.NewHasher(cfg.BlockSize, cfg.HashSeed, cfg.Encoding, 0)
	if err != nil {
		return nil, err
	}
	pub := zmq4.NewPub(ctx)
	if err := pub.Listen(cfg.Listen); err != nil {
		return nil, fmt.Errorf("mockllm: kv events: %w", err)
	}
	go func() { <-ctx.Done(); _ = pub.Close() }()
	c := &KVCache{hasher: h, pub: pub, blocks: cfg.Blocks, prefill: cfg.PrefillPerBlock, lru: list.New(), byH: map[uint64]*list.Element{}}
	s.ext.kv.Store(c)
	s.mux.HandleFunc("GET /debug/kv", func(w http.ResponseWriter, _ *http.Request) {
		hits, misses := c.KVStats()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"hits": hits, "misses": misses})
	})
	return c, nil
}

// KVStats are the cache's counters: blocks found cached, blocks computed.
func (c *KVCache) KVStats() (hits, misses int64) { return c.hits.Load(), c.miss.Load() }

// Reset empties the cache and publishes AllBlocksCleared.
func (c *KVCache) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	clear(c.byH)
	c.publish([]kvevents.Event{{Kind: kvevents.AllBlocksCleared}})
}

// observe runs the prompt through the cache: leading blocks already held
// are hits, the rest are stored (evicting the least recently used), and
// the stores and evictions are published as one batch. It returns the
// prefill time of the blocks not cached.
func (c *KVCache) observe(req *request) time.Duration {
	text := promptText(req)
	toks := c.hasher.Tokens(nil, text)
	hashes := c.hasher.Chain(nil, toks)
	if len(hashes) == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	held := 0
	for held < len(hashes) && c.byH[hashes[held]] != nil {
		c.lru.MoveToFront(c.byH[hashes[held]])
		held++
	}
	c.hits.Add(int64(held))
	c.miss.Add(int64(len(hashes) - held))
	prefill := time.Duration(len(hashes)-held) * c.prefill
	if held == len(hashes) {
		return prefill
	}
	var evicted []uint64
	for _, h := range hashes[held:] {
		if c.lru.Len() >= c.blocks {
			old := c.lru.Back()
			evicted = append(evicted, old.Value.(uint64))
			delete(c.byH, old.Value.(uint64))
			c.lru.Remove(old)
		}
		c.byH[h] = c.lru.PushFront(h)
	}
	bs := c.hasher.BlockSize()
	st := kvevents.Event{Kind: kvevents.BlockStored, Hashes: hashes[held:], Tokens: toks[held*bs : len(hashes)*bs], BlockSize: bs}
	if held > 0 {
		st.Parent, st.HasParent = hashes[held-1], true
	}
	evs := make([]kvevents.Event, 0, 2)
	if len(evicted) > 0 {
		evs = append(evs, kvevents.Event{Kind: kvevents.BlockRemoved, Hashes: evicted})
	}
	c.publish(append(evs, st))
	return prefill
}

// publish sends one batch with the next sequence number (c.mu held, so
// batches leave in sequence order).
func (c *KVCache) publish(evs []kvevents.Event) {
	b := kvevents.Batch{TS: float64(time.Now().UnixNano()) / 1e9, Events: evs}
	payload, err := kvevents.Encode(&b)
	if err != nil {
		return
	}
	// A PUB socket drops what no subscriber takes; the sequence number
	// still advances, as vLLM's does.
	_ = c.pub.Send(zmq4.NewMsgFrom(kvevents.Frames("", c.seq, payload)...))
	c.seq++
}

// promptText is the prompt as the gateway assembles it for prefix
// routing (l7/gateway's appendPrompt): each chat message with string
// content as 0x1e role 0x1f content, or the completion prompt's strings.
func promptText(req *request) string {
	var b []byte
	for _, m := range req.Messages {
		var s string
		if json.Unmarshal(m.Content, &s) != nil {
			continue
		}
		b = append(b, 0x1e)
		b = append(b, m.Role...)
		b = append(b, 0x1f)
		b = append(b, s...)
	}
	if len(req.Prompt) > 0 {
		var one string
		var many []string
		if json.Unmarshal(req.Prompt, &one) == nil {
			b = append(b, one...)
		} else if json.Unmarshal(req.Prompt, &many) == nil {
			for _, p := range many {
				b = append(b, p...)
			}
		}
	}
	return string(b)
}

// observeKV feeds the request to the prefix-cache model when it is on
// and returns its prefill time.
func (s *Server) observeKV(req *request) time.Duration {
	if c := s.ext.kv.Load(); c != nil {
		return c.observe(req)
	}
	return 0
}
