package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Bounds on feedback.
const (
	MaxFeedbackLabel   = 64
	MaxFeedbackComment = 4096
	MaxFeedbackScore   = 1e6
)

var (
	// ErrNoRequest: the tenant has no request with that id in the ledger
	// (another tenant's id is answered the same).
	ErrNoRequest = errors.New("no such request in the ledger")
	// ErrNoDatabase: feedback is stored in PostgreSQL, and none is set.
	ErrNoDatabase = errors.New("the ledger has no PostgreSQL database")
)

// Feedback is a score for one request, from its own tenant.
type Feedback struct {
	Tenant, RequestID string
	Score             float64
	Label, Comment    string
}

// Check bounds f's fields.
func (f *Feedback) Check() error {
	switch {
	case f.RequestID == "" || len(f.RequestID) > 128:
		return errors.New("request_id must be 1 to 128 bytes")
	case math.IsNaN(f.Score) || math.Abs(f.Score) > MaxFeedbackScore:
		return fmt.Errorf("score must be a number within ±%g", float64(MaxFeedbackScore))
	case len(f.Label) > MaxFeedbackLabel || !utf8.ValidString(f.Label):
		return fmt.Errorf("label must be UTF-8 of at most %d bytes", MaxFeedbackLabel)
	case len(f.Comment) > MaxFeedbackComment || !utf8.ValidString(f.Comment):
		return fmt.Errorf("comment must be UTF-8 of at most %d bytes", MaxFeedbackComment)
	}
	return nil
}

// RecordFeedback stores f against the tenant's latest ledger row with that
// request id (a client may reuse ids); a second score replaces the first.
func RecordFeedback(ctx context.Context, db *pgxpool.Pool, f Feedback) error {
	if err := f.Check(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var entry, model string
		err := tx.QueryRow(ctx, `SELECT entry_id, model FROM infergate_usage WHERE tenant = $1 AND request_id = $2
			ORDER BY time DESC LIMIT 1`, f.Tenant, f.RequestID).Scan(&entry, &model)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoRequest
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO infergate_feedback (entry_id, tenant, request_id, model, score, label, comment, time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (entry_id) DO UPDATE SET score = $5, label = $6, comment = $7, time = $8`,
			entry, f.Tenant, f.RequestID, model, f.Score, f.Label, f.Comment, time.Now().UTC())
		return err
	})
	if err != nil && !errors.Is(err, ErrNoRequest) {
		return fmt.Errorf("store feedback: %w", err)
	}
	return err
}

// Feedback stores f in the ledger's database.
func (l *Ledger) Feedback(ctx context.Context, f Feedback) error {
	if l.Shipper == nil {
		return ErrNoDatabase
	}
	return RecordFeedback(ctx, l.Shipper.db, f)
}
