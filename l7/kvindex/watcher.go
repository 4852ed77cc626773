package kvindex

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/l7/kvevents"
	"github.com/infergate/infergate/policy"
)

// sweepEvery: how often blocks of backends no longer live are freed.
const sweepEvery = 10 * time.Second

// Watcher keeps one kvevents.Subscriber per backend of every pool with
// kvEvents, feeding one Index, and hashes prompts for those pools.
type Watcher struct {
	index *Index
	log   *slog.Logger

	hashers atomic.Pointer[map[string]*Hasher] // by pool

	mu      sync.Mutex
	want    map[string]string // "pool/backend" -> endpoint
	running map[string]*running
	changed chan struct{}
}

type running struct {
	endpoint string
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewWatcher returns a Watcher feeding index; it subscribes once Run runs.
func NewWatcher(index *Index, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{index: index, log: log, want: map[string]string{}, running: map[string]*running{}, changed: make(chan struct{}, 1)}
	w.hashers.Store(&map[string]*Hasher{})
	return w
}

// Index is the index the Watcher feeds.
func (w *Watcher) Index() *Index { return w.index }

// SetPools aims the Watcher at c's pools with kvEvents. On error (a
// tokenizer that cannot load) nothing changed.
func (w *Watcher) SetPools(c *policy.Compiled) error {
	want := map[string]string{}
	hashers := map[string]*Hasher{}
	if c != nil {
		for _, p := range c.Pools {
			k := p.KVEvents
			if k == nil {
				continue
			}
			h, err := NewHasher(k.BlockSize, k.HashSeed, k.Encoding, 0)
			if err != nil {
				return err
			}
			hashers[p.Name] = h
			byName := map[string]string{}
			for _, e := range k.Endpoints {
				byName[e.Backend] = e.Endpoint
			}
			for _, b := range p.Backends {
				ep := byName[b.Name]
				if k.Port != 0 {
					ep = "tcp://" + net.JoinHostPort(b.Address.String(), strconv.Itoa(k.Port))
				}
				if ep != "" {
					want[p.Name+"/"+b.Name] = ep
				}
			}
		}
	}
	w.hashers.Store(&hashers)
	w.mu.Lock()
	w.want = want
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return nil
}

// PromptHashes returns the block hashes of prompt for pool's engines, nil
// when pool has no kvEvents.
func (w *Watcher) PromptHashes(pool string, prompt []byte) []uint64 {
	h := (*w.hashers.Load())[pool]
	if h == nil {
		return nil
	}
	return h.Hashes(string(prompt))
}

// BlockTokens is the tokens per block of pool's engines, 0 when pool has
// no kvEvents.
func (w *Watcher) BlockTokens(pool string) int {
	if h := (*w.hashers.Load())[pool]; h != nil {
		return h.BlockSize()
	}
	return 0
}

// Match is Index.Match.
func (w *Watcher) Match(hashes []uint64, names []string, out []int) bool {
	return w.index.Match(hashes, names, out)
}

// Run subscribes to the endpoints SetPools named, following its changes,
// until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	defer w.stopAll()
	for {
		w.reconcile(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
		case <-tick.C:
			w.index.Sweep()
		}
	}
}

// reconcile starts and stops subscribers to match want.
func (w *Watcher) reconcile(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, r := range w.running {
		if ep, ok := w.want[name]; !ok || ep != r.endpoint {
			r.cancel()
			<-r.done
			delete(w.running, name)
			w.index.Forget(name)
		}
	}
	for name, ep := range w.want {
		if _, ok := w.running[name]; ok {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		r := &running{endpoint: ep, cancel: cancel, done: make(chan struct{})}
		w.running[name] = r
		sub := &kvevents.Subscriber{Backend: name, Endpoint: ep, Sink: w.index, Log: w.log}
		go func() {
			defer close(r.done)
			if err := sub.Run(sctx); err != nil {
				w.log.Error("kv events subscription", "backend", name, "err", err)
			}
		}()
		w.log.Info("subscribing to KV-cache events", "backend", name, "endpoint", ep)
	}
}

func (w *Watcher) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, r := range w.running {
		r.cancel()
		<-r.done
		delete(w.running, name)
	}
}
