package ledger

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Shipping cadence and retry bounds.
const (
	shipBatch    = 500
	shipInterval = 200 * time.Millisecond
	minBackoff   = 250 * time.Millisecond
	maxBackoff   = 10 * time.Second
	shipTimeout  = 30 * time.Second
)

// Shipper moves spool entries to PostgreSQL (see the package doc).
type Shipper struct {
	spool  *Spool
	db     *pgxpool.Pool
	log    *slog.Logger
	failed atomic.Uint64 // shipping attempts that failed
	cancel context.CancelFunc
	done   chan struct{}
}

// CheckDSN reports whether dsn parses, without echoing it (it may hold a
// password).
func CheckDSN(dsn string) error {
	if _, err := pgxpool.ParseConfig(dsn); err != nil {
		return errBadDSN
	}
	return nil
}

// StartShipper connects to dsn lazily (the database may be down at start)
// and ships until Stop.
func StartShipper(spool *Spool, dsn string, log *slog.Logger) (*Shipper, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: do not echo it.
		return nil, errBadDSN
	}
	cfg.MaxConns = 2
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, errBadDSN
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := &Shipper{spool: spool, db: db, log: log, cancel: cancel, done: make(chan struct{})}
	go sh.run(ctx)
	return sh, nil
}

// Failures counts failed shipping attempts.
func (sh *Shipper) Failures() uint64 { return sh.failed.Load() }

// Halt stops shipping at once (another shipper takes over the spool).
func (sh *Shipper) Halt() {
	sh.cancel()
	<-sh.done
	sh.db.Close()
}

// Stop ships what it can within ctx, then stops.
func (sh *Shipper) Stop(ctx context.Context) {
	sh.cancel()
	<-sh.done
	for ctx.Err() == nil {
		n, err := sh.shipOnce(ctx)
		if err != nil || n == 0 {
			break
		}
	}
	sh.db.Close()
}

func (sh *Shipper) run(ctx context.Context) {
	defer close(sh.done)
	migrated := false
	backoff := minBackoff
	for {
		wait := shipInterval
		var err error
		if !migrated {
			mctx, cancel := context.WithTimeout(ctx, shipTimeout)
			err = Migrate(mctx, sh.db)
			cancel()
			migrated = err == nil
		}
		n := 0
		if err == nil {
			n, err = sh.shipOnce(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			sh.failed.Add(1)
			sh.log.Warn("ledger: shipping to PostgreSQL failed; entries stay in the spool", "err", err,
				"spooled", sh.spool.Stats().Entries, "retry_in", backoff)
			wait = backoff
			backoff = min(backoff*2, maxBackoff)
		case n == shipBatch:
			wait, backoff = 0, minBackoff
		default:
			backoff = minBackoff
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// shipOnce ships one batch: insert, commit, then trim the spool.
func (sh *Shipper) shipOnce(ctx context.Context) (int, error) {
	batch, err := sh.spool.head(shipBatch)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	ictx, cancel := context.WithTimeout(ctx, shipTimeout)
	defer cancel()
	if err := insert(ictx, sh.db, batch); err != nil {
		return 0, err
	}
	if err := sh.spool.remove(batch); err != nil {
		return 0, err
	}
	return len(batch), nil
}
