package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultMaxEntries bounds a spool when the policy names no bound: about
// 300 MB of entries, days of a busy gateway's traffic with PostgreSQL away.
const DefaultMaxEntries = 1_000_000

// openTimeout: another process holding the spool (a second gateway on the
// same state directory) is an error, not a hang.
const openTimeout = 5 * time.Second

var entriesBucket = []byte("entries")

// ErrSpoolFull is returned by Append when the spool holds MaxEntries.
var ErrSpoolFull = errors.New("ledger spool is full")

// maxCommit bounds the entries one group commit writes.
const maxCommit = 1024

// appendReq is one Append waiting for its group commit.
type appendReq struct {
	v    []byte
	done chan error
}

var donePool = sync.Pool{New: func() any { return make(chan error, 1) }}

// Spool is the durable local spool (see the package doc).
type Spool struct {
	db *bolt.DB
	// queue feeds the committer; mu guards closing it.
	queue     chan appendReq
	mu        sync.RWMutex
	closed    bool
	committed chan struct{}
	path      string
	max       atomic.Int64
	node      string
	entries   atomic.Int64 // entries held
	dropped   atomic.Uint64
	shipped   atomic.Uint64
}

// OpenSpool opens (creating) the spool at path, bounded to max entries
// (DefaultMaxEntries when max <= 0); node names this gateway in its entries.
func OpenSpool(path string, max int64, node string) (*Spool, error) {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger spool directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("open ledger spool %s: %w", path, err)
	}
	s := &Spool{db: db, path: path, node: node}
	s.max.Store(max)
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(entriesBucket)
		if err != nil {
			return err
		}
		s.entries.Store(int64(b.Stats().KeyN))
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open ledger spool %s: %w", path, err)
	}
	s.queue, s.committed = make(chan appendReq, maxCommit), make(chan struct{})
	go s.commitLoop()
	return s, nil
}

// commitLoop writes what is queued in one transaction (one fsync), then
// what queued meanwhile, and so on: requests finishing together share a
// commit, and a lone request waits for no timer (bbolt's Batch would hold
// it for MaxBatchDelay, 10 ms).
func (s *Spool) commitLoop() {
	defer close(s.committed)
	batch := make([]appendReq, 0, maxCommit)
	for r := range s.queue {
		batch = append(batch[:0], r)
	drain:
		for len(batch) < maxCommit {
			select {
			case q, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(entriesBucket)
			for _, q := range batch {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], seq)
				if err := b.Put(k[:], q.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			s.entries.Add(int64(len(batch)))
		}
		for _, q := range batch {
			q.done <- err
		}
	}
}

// OpenSpoolReadOnly opens a spool no gateway holds, for reading.
func OpenSpoolReadOnly(path string) (*Spool, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("ledger spool: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open ledger spool %s (is a gateway running on it?): %w", path, err)
	}
	return &Spool{db: db, path: path}, nil
}

// Path is the spool's file.
func (s *Spool) Path() string { return s.path }

// Close waits for the appends queued and closes the file.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.queue != nil && !s.closed {
		s.closed = true
		close(s.queue)
		<-s.committed
	}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close ledger spool: %w", err)
	}
	return nil
}

// Append writes e durably (see the package doc for the group commit); it
// returns when the entry is on disk. It sets e.EntryID and e.Node.
func (s *Spool) Append(e *Entry) error {
	if s.entries.Load() >= s.max.Load() {
		s.dropped.Add(1)
		return ErrSpoolFull
	}
	id, err := newEntryID()
	if err != nil {
		return err
	}
	e.EntryID, e.Node = id, s.node
	v, err := e.marshal()
	if err != nil {
		return err
	}
	done := donePool.Get().(chan error)
	s.mu.RLock()
	if s.closed || s.queue == nil {
		s.mu.RUnlock()
		donePool.Put(done)
		return errors.New("append to ledger spool: closed")
	}
	s.queue <- appendReq{v: v, done: done}
	s.mu.RUnlock()
	err = <-done
	donePool.Put(done)
	if err != nil {
		return fmt.Errorf("append to ledger spool: %w", err)
	}
	return nil
}

// spooled is one entry read back with its spool key.
type spooled struct {
	key   []byte
	entry Entry
}

// head reads up to n entries in append order.
func (s *Spool) head(n int) ([]spooled, error) {
	var out []spooled
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(entriesBucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			e, err := unmarshalEntry(v)
			if err != nil {
				return fmt.Errorf("spool key %x: %w", k, err)
			}
			out = append(out, spooled{key: append([]byte(nil), k...), entry: e})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ledger spool: %w", err)
	}
	return out, nil
}

// remove deletes shipped entries.
func (s *Spool) remove(batch []spooled) error {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(entriesBucket)
		for _, sp := range batch {
			if b.Get(sp.key) == nil {
				continue // trimmed already (by a shipper being replaced)
			}
			if err := b.Delete(sp.key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("trim ledger spool: %w", err)
	}
	s.entries.Add(-int64(n))
	s.shipped.Add(uint64(n))
	return nil
}

// Each calls f for every entry held, in append order.
func (s *Spool) Each(f func(*Entry) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(entriesBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			e, err := unmarshalEntry(v)
			if err != nil {
				return fmt.Errorf("spool key %x: %w", k, err)
			}
			return f(&e)
		})
	})
}

// Stats are the spool's counters.
type Stats struct {
	Entries int64  // held now
	Max     int64  // bound
	Dropped uint64 // refused because the spool was full
	Shipped uint64 // moved to PostgreSQL and trimmed
}

// Stats reads the counters.
func (s *Spool) Stats() Stats {
	return Stats{Entries: s.entries.Load(), Max: s.max.Load(), Dropped: s.dropped.Load(), Shipped: s.shipped.Load()}
}

func (s *Spool) setMax(max int64) {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	s.max.Store(max)
}
