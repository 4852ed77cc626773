package kvindex

import (
	"cmp"
	"container/list"
	"fmt"
	"sync"
	"time"

	"github.com/infergate/infergate/l7/kvevents"
)

// Defaults for Config's zero fields.
const (
	// DefaultMaxEntries bounds the (block, backend) pairs held, about
	// 150 bytes each: 40 MB. One H100 running a 70B model holds some
	// 30 000 blocks of 16 tokens, so this covers eight of them.
	DefaultMaxEntries = 1 << 18
	// DefaultStaleAfter: a backend that published nothing for this long
	// has its blocks ignored and then dropped. vLLM publishes on every
	// scheduler step that stores or evicts a block, so a backend taking
	// traffic is never this quiet; one that is may have hung.
	DefaultStaleAfter = 5 * time.Minute
	// DefaultDownGrace: a lost subscription keeps its blocks this long,
	// so a publisher restart or a network blip does not throw away a warm
	// index (a sequence gap on the redial still clears it).
	DefaultDownGrace = 10 * time.Second
)

// Config tunes an Index; zero fields take the defaults.
type Config struct {
	MaxEntries int
	StaleAfter time.Duration
	DownGrace  time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Index records which backend holds which KV blocks, from their events.
// It is safe for concurrent use and implements kvevents.Sink.
type Index struct {
	cfg Config

	mu       sync.RWMutex
	backends map[string]*backend
	byID     []*backend // id -> backend; a forgotten backend's slot is nil
	blocks   map[uint64][]uint16
	lru      *list.List // of *entry, most recently stored at front
}

type backend struct {
	name    string
	id      uint16
	entries map[uint64]*list.Element
	// connected: a subscription is up; downAt: when it went down.
	connected bool
	downAt    time.Time
	lastEvent time.Time
	haveSeq   bool
	nextSeq   uint64
	// Counters, for Stats.
	gaps, clears uint64
}

type entry struct {
	hash uint64
	b    *backend
}

var _ kvevents.Sink = (*Index)(nil)

// New returns an empty Index.
func New(cfg Config) (*Index, error) {
	cfg.MaxEntries = cmp.Or(cfg.MaxEntries, DefaultMaxEntries)
	cfg.StaleAfter = cmp.Or(cfg.StaleAfter, DefaultStaleAfter)
	cfg.DownGrace = cmp.Or(cfg.DownGrace, DefaultDownGrace)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEntries < 1 || cfg.MaxEntries > 1<<26 {
		return nil, fmt.Errorf("kvindex: max entries %d outside [1, 64Mi]", cfg.MaxEntries)
	}
	if cfg.StaleAfter < 0 || cfg.DownGrace < 0 {
		return nil, fmt.Errorf("kvindex: negative stale (%v) or grace (%v) period", cfg.StaleAfter, cfg.DownGrace)
	}
	return &Index{cfg: cfg, backends: map[string]*backend{}, blocks: map[uint64][]uint16{}, lru: list.New()}, nil
}

// maxBackends: backend ids are uint16.
const maxBackends = 1 << 16

// get returns name's state, creating it; nil when the id space is full.
func (x *Index) get(name string) *backend {
	if b := x.backends[name]; b != nil {
		return b
	}
	id := -1
	for i, b := range x.byID {
		if b == nil {
			id = i
			break
		}
	}
	if id < 0 {
		if len(x.byID) >= maxBackends {
			return nil
		}
		id = len(x.byID)
		x.byID = append(x.byID, nil)
	}
	b := &backend{name: name, id: uint16(id), entries: map[uint64]*list.Element{}}
	x.byID[id] = b
	x.backends[name] = b
	return b
}

// Up marks name's subscription established. A re-established one starts
// the backend afresh: a PUB socket drops what it publishes while nobody is
// subscribed, and a restarted engine's sequence numbers may by chance go
// on where the old one's stopped, so neither can be told apart from a
// stream that lost nothing. Its blocks served Match during the grace; now
// its next batches rebuild them.
func (x *Index) Up(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.get(name)
	if b == nil {
		return
	}
	if b.haveSeq {
		x.clear(b)
		b.haveSeq = false
	}
	b.connected = true
}

// Down marks name's subscription lost; its blocks stay usable for
// DownGrace.
func (x *Index) Down(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if b := x.backends[name]; b != nil && b.connected {
		b.connected, b.downAt = false, x.cfg.Now()
	}
}

// Apply applies one batch of name's events with its sequence number. A
// gap (a sequence number other than the next expected, such as the 0 of a
// restarted engine) clears name first: the batches lost may have removed
// blocks, and vLLM's replay socket is optional, so the index starts again
// from what follows rather than guess.
func (x *Index) Apply(name string, seq uint64, batch *kvevents.Batch) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.get(name)
	if b == nil {
		return
	}
	if b.haveSeq && seq != b.nextSeq {
		b.gaps++
		x.clear(b)
	}
	b.haveSeq, b.nextSeq = true, seq+1
	b.lastEvent = x.cfg.Now()
	for i := range batch.Events {
		ev := &batch.Events[i]
		switch ev.Kind {
		case kvevents.BlockStored:
			for _, h := range ev.Hashes {
				x.store(b, h)
			}
		case kvevents.BlockRemoved:
			for _, h := range ev.Hashes {
				if el := b.entries[h]; el != nil {
					x.remove(el)
				}
			}
		case kvevents.AllBlocksCleared:
			x.clear(b)
		}
	}
}

func (x *Index) store(b *backend, h uint64) {
	if el := b.entries[h]; el != nil {
		x.lru.MoveToFront(el)
		return
	}
	for x.lru.Len() >= x.cfg.MaxEntries {
		x.remove(x.lru.Back())
	}
	b.entries[h] = x.lru.PushFront(&entry{hash: h, b: b})
	x.blocks[h] = append(x.blocks[h], b.id)
}

func (x *Index) remove(el *list.Element) {
	e := el.Value.(*entry)
	x.lru.Remove(el)
	delete(e.b.entries, e.hash)
	ids := x.blocks[e.hash]
	for i, id := range ids {
		if id == e.b.id {
			ids[i] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
			break
		}
	}
	if len(ids) == 0 {
		delete(x.blocks, e.hash)
	} else {
		x.blocks[e.hash] = ids
	}
}

func (x *Index) clear(b *backend) {
	b.clears++
	for _, el := range b.entries {
		x.remove(el)
	}
}

// Forget drops name and its blocks (it left the policy).
func (x *Index) Forget(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.backends[name]
	if b == nil {
		return
	}
	x.clear(b)
	delete(x.backends, name)
	x.byID[b.id] = nil
}

// live reports whether b's blocks may be used now.
func (x *Index) live(b *backend, now time.Time) bool {
	if b == nil || !b.haveSeq {
		return false
	}
	if !b.connected && now.Sub(b.downAt) > x.cfg.DownGrace {
		return false
	}
	return now.Sub(b.lastEvent) <= x.cfg.StaleAfter
}

// Live reports whether name has a live event stream: subscribed (or lost
// less than DownGrace ago) and heard from within StaleAfter.
func (x *Index) Live(name string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.live(x.backends[name], x.cfg.Now())
}

// Match sets out[i] to how many leading blocks of hashes backend names[i]
// holds, or -1 when that backend has no live event stream, and reports
// whether any of them has one. Blocks chain, so a backend's match ends at
// its first missing block.
func (x *Index) Match(hashes []uint64, names []string, out []int) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	now := x.cfg.Now()
	anyLive := false
	var stack [16]*backend
	bs := stack[:0]
	for i, n := range names {
		b := x.backends[n]
		if !x.live(b, now) {
			out[i] = -1
			bs = append(bs, nil)
			continue
		}
		anyLive = true
		out[i] = 0
		bs = append(bs, b)
	}
	if !anyLive {
		return false
	}
	alive := len(names)
	for k, h := range hashes {
		ids := x.blocks[h]
		alive = 0
		for i, b := range bs {
			if b == nil || out[i] != k {
				continue
			}
			if hasID(ids, b.id) {
				out[i] = k + 1
				alive++
			}
		}
		if alive == 0 {
			break
		}
	}
	return true
}

func hasID(ids []uint16, id uint16) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

// Sweep drops the blocks of backends that are no longer live, freeing
// their memory; Match already ignores them.
func (x *Index) Sweep() {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.cfg.Now()
	for _, b := range x.backends {
		if len(b.entries) > 0 && !x.live(b, now) {
			x.clear(b)
		}
	}
}

// Stats are the index's counters.
type Stats struct {
	Entries int
	// Per backend: blocks held, live, sequence gaps seen, clears.
	Backends map[string]BackendStats
}

// BackendStats are one backend's counters.
type BackendStats struct {
	Blocks       int
	Live         bool
	Gaps, Clears uint64
}

// Stats returns the index's counters.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	now := x.cfg.Now()
	s := Stats{Entries: x.lru.Len(), Backends: map[string]BackendStats{}}
	for n, b := range x.backends {
		s.Backends[n] = BackendStats{Blocks: len(b.entries), Live: x.live(b, now), Gaps: b.gaps, Clears: b.clears}
	}
	return s
}
