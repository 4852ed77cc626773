package cache

import (
	"container/list"
	"sync"
	"time"
)

// memory is the in-process store: least recently used entries are evicted
// first once the bytes held pass the bound, and an entry older than the
// TTL is a miss (and removed).
type memory struct {
	mu      sync.Mutex
	max     int64
	used    int64
	ttl     time.Duration
	order   list.List // front: most recently used
	entries map[Key]*list.Element
}

type memItem struct {
	key     Key
	entry   *Entry
	expires time.Time
}

func newMemory(max int64, ttl time.Duration) *memory {
	return &memory{max: max, ttl: ttl, entries: map[Key]*list.Element{}}
}

func (m *memory) get(k Key, now time.Time) (*Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[k]
	if !ok {
		return nil, false
	}
	it := el.Value.(*memItem)
	if !now.Before(it.expires) {
		m.remove(el)
		return nil, false
	}
	m.order.MoveToFront(el)
	return it.entry, true
}

// put stores e until now+ttl (or until expires, when not zero and sooner).
func (m *memory) put(k Key, e *Entry, now time.Time, expires time.Time) {
	size := e.size()
	if size > m.max {
		return
	}
	if exp := now.Add(m.ttl); expires.IsZero() || exp.Before(expires) {
		expires = exp
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.entries[k]; ok {
		m.remove(el)
	}
	for m.used+size > m.max {
		m.remove(m.order.Back())
	}
	m.entries[k] = m.order.PushFront(&memItem{key: k, entry: e, expires: expires})
	m.used += size
}

func (m *memory) remove(el *list.Element) {
	it := el.Value.(*memItem)
	m.order.Remove(el)
	delete(m.entries, it.key)
	m.used -= it.entry.size()
}

// stats returns the entries and bytes held.
func (m *memory) stats() (entries int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries), m.used
}
