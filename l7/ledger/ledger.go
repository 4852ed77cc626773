package ledger

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/l7/audit"
)

var errBadDSN = errors.New("ledger: the PostgreSQL DSN does not parse")

// Ledger is a node's spool and, when a database is configured, its
// shipper. Append is what the gateway calls.
type Ledger struct {
	Spool   *Spool
	Shipper *Shipper // nil without PostgreSQL
	log     *slog.Logger
}

// Open opens the spool and starts shipping to dsn ("" for none).
func Open(spoolPath string, max int64, node, dsn string, log *slog.Logger) (*Ledger, error) {
	s, err := OpenSpool(spoolPath, max, node)
	if err != nil {
		return nil, err
	}
	l := &Ledger{Spool: s, log: log}
	if dsn != "" {
		if l.Shipper, err = StartShipper(s, dsn, log); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return l, nil
}

// Append spools a finished request's record.
func (l *Ledger) Append(r *audit.Record) error {
	e := FromAudit(r)
	return l.Spool.Append(&e)
}

// Close ships what it can within ctx and closes the spool.
func (l *Ledger) Close(ctx context.Context) error {
	if l.Shipper != nil {
		l.Shipper.Stop(ctx)
	}
	return l.Spool.Close()
}

// SetMaxEntries changes the spool's bound.
func (l *Ledger) SetMaxEntries(max int64) { l.Spool.setMax(max) }

// Collectors are the ledger's metrics, read from whatever ledger current
// returns (nil: none, all zero), so they are registered once however often
// the ledger is replaced.
func Collectors(current func() *Ledger) []prometheus.Collector {
	stats := func() Stats {
		if l := current(); l != nil {
			return l.Spool.Stats()
		}
		return Stats{}
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "infergate_ledger_spool_entries",
			Help: "Ledger entries in the local spool not yet shipped to PostgreSQL."},
			func() float64 { return float64(stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "infergate_ledger_spool_max_entries",
			Help: "Bound on the local ledger spool; at it, new entries are dropped."},
			func() float64 { return float64(stats().Max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "infergate_ledger_spool_dropped_total",
			Help: "Ledger entries dropped because the spool was full (since the spool was opened)."},
			func() float64 { return float64(stats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "infergate_ledger_shipped_total",
			Help: "Ledger entries committed to PostgreSQL and trimmed from the spool (since the spool was opened)."},
			func() float64 { return float64(stats().Shipped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "infergate_ledger_ship_failures_total",
			Help: "Attempts to ship ledger entries to PostgreSQL that failed (retried with backoff)."},
			func() float64 {
				if l := current(); l != nil && l.Shipper != nil {
					return float64(l.Shipper.Failures())
				}
				return 0
			}),
	}
}
