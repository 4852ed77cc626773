package serve

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/infergate/infergate/l7/audit"
	"github.com/infergate/infergate/l7/ledger"
	"github.com/infergate/infergate/policy"
)

// ledgerSlot is the gateway's Ledger for the Server's whole life: it
// forwards to the ledger the policy in force names, so a policy that
// changes only the ledger does not rebuild the gateway. Append holds the
// read lock while it writes, so a ledger swapped out has no write in
// flight when it is closed.
type ledgerSlot struct {
	mu  sync.RWMutex
	l   *ledger.Ledger
	cfg policy.Ledger
}

func (s *ledgerSlot) Append(r *audit.Record) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.l == nil {
		return nil
	}
	return s.l.Append(r)
}

// Feedback stores feedback in the ledger in force.
// It does not hold the lock over the query, which would hold up a swap and
// with it every Append behind the swap.
func (s *ledgerSlot) Feedback(ctx context.Context, f ledger.Feedback) error {
	l := s.current()
	if l == nil {
		return ledger.ErrNoDatabase
	}
	return l.Feedback(ctx, f)
}

func (s *ledgerSlot) current() *ledger.Ledger {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.l
}

// ledgerChange is a prepared change of ledger, put in force by commit.
type ledgerChange struct {
	slot *ledgerSlot
	cfg  policy.Ledger
	next *ledger.Ledger // the ledger to use; may be the one in force
	// reuse: the spool stays (same file); only the shipper is replaced,
	// by one for dsn, at commit (two shippers never share a spool).
	reuse bool
	dsn   string
}

// prepareLedger opens what cfg names that is not open yet. It returns nil
// when the ledger in force already matches cfg.
func (s *Server) prepareLedger(cfg policy.Ledger) (*ledgerChange, error) {
	slot := &s.ledger
	slot.mu.RLock()
	cur, curCfg := slot.l, slot.cfg
	slot.mu.RUnlock()
	if cur != nil && cfg == curCfg || cur == nil && cfg.Spool == "" {
		return nil, nil
	}
	ch := &ledgerChange{slot: slot, cfg: cfg}
	if cfg.Spool == "" {
		return ch, nil
	}
	dsn := ""
	if cfg.Postgres.DSNFile != "" {
		read := s.o.Gateway.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		b, err := read(cfg.Postgres.DSNFile)
		if err != nil {
			return nil, fmt.Errorf("gateway.ledger.postgres.dsnFile: %w", err)
		}
		if dsn = strings.TrimSpace(string(b)); dsn == "" {
			return nil, fmt.Errorf("gateway.ledger.postgres.dsnFile %s is empty", cfg.Postgres.DSNFile)
		}
	}
	node, _ := os.Hostname()
	if cur != nil && cur.Spool.Path() == cfg.Spool {
		// The same file cannot be opened twice (bbolt locks it): keep the
		// spool, replace the shipper.
		if dsn != "" {
			if err := ledger.CheckDSN(dsn); err != nil {
				return nil, fmt.Errorf("gateway.ledger.postgres: %w", err)
			}
		}
		ch.reuse, ch.dsn = true, dsn
		ch.next = &ledger.Ledger{Spool: cur.Spool}
		return ch, nil
	}
	l, err := ledger.Open(cfg.Spool, cfg.MaxEntries, node, dsn, s.log)
	if err != nil {
		return nil, fmt.Errorf("gateway.ledger: %w", err)
	}
	ch.next = l
	return ch, nil
}

// abort closes what prepare opened.
func (ch *ledgerChange) abort() {
	if ch == nil || ch.next == nil {
		return
	}
	if ch.reuse {
		return
	}
	_ = ch.next.Close(context.Background())
}

// commit puts the change in force and returns the ledger to close (nil
// when there is none or when the spool is reused: then only the old
// shipper stops).
func (ch *ledgerChange) commit(s *Server) {
	if ch == nil {
		return
	}
	slot := ch.slot
	if ch.reuse {
		s.swapShipper(ch)
		return
	}
	slot.mu.Lock()
	old := slot.l
	slot.l, slot.cfg = ch.next, ch.cfg
	slot.mu.Unlock()
	if ch.next != nil {
		ch.next.SetMaxEntries(ch.cfg.MaxEntries)
		s.registerLedgerMetrics()
	}
	if old == nil {
		return
	}
	s.retirings.Add(1)
	go func() {
		defer s.retirings.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownGrace)
		defer cancel()
		if err := old.Close(ctx); err != nil {
			s.log.Warn("closing the replaced ledger", "err", err)
		}
	}()
}

// swapShipper replaces the shipper of the spool in force: the old one
// halts first, so two never trim one spool.
func (s *Server) swapShipper(ch *ledgerChange) {
	slot := ch.slot
	slot.mu.Lock()
	defer slot.mu.Unlock()
	cur := slot.l
	if cur.Shipper != nil {
		cur.Shipper.Halt()
	}
	ch.next.Shipper = nil
	if ch.dsn != "" {
		sh, err := ledger.StartShipper(cur.Spool, ch.dsn, s.log)
		if err != nil {
			// CheckDSN passed in prepare; StartShipper fails on nothing else.
			s.log.Error("usage ledger: shipper not started; entries stay in the spool", "err", err)
		}
		ch.next.Shipper = sh
	}
	ch.next.SetMaxEntries(ch.cfg.MaxEntries)
	slot.l, slot.cfg = ch.next, ch.cfg
}

// registerLedgerMetrics registers the ledger's metrics once.
func (s *Server) registerLedgerMetrics() {
	s.ledgerMetrics.Do(func() {
		for _, c := range ledger.Collectors(s.ledger.current) {
			if err := s.reg.Register(c); err != nil {
				s.log.Warn("registering ledger metrics", "err", err)
			}
		}
	})
}

// closeLedger ships what it can within ctx and closes the ledger.
func (s *Server) closeLedger(ctx context.Context) error {
	slot := &s.ledger
	slot.mu.Lock()
	l := slot.l
	slot.l = nil
	slot.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Close(ctx)
}
