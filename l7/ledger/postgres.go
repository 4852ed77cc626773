package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaLock is the advisory lock two gateways starting together take so
// their CREATE ... IF NOT EXISTS do not race in the catalogue.
const schemaLock = 0x1f6a7e_1ed6e7

const schema = `
CREATE TABLE IF NOT EXISTS infergate_usage (
	entry_id          text PRIMARY KEY,
	request_id        text NOT NULL,
	time              timestamptz NOT NULL,
	tenant            text NOT NULL,
	key               text NOT NULL,
	model             text NOT NULL,
	endpoint          text NOT NULL,
	status            integer NOT NULL,
	stream            boolean NOT NULL,
	prompt_tokens     bigint NOT NULL,
	completion_tokens bigint NOT NULL,
	cached_tokens     bigint NOT NULL,
	cost_usd          double precision NOT NULL,
	node              text NOT NULL
);
CREATE INDEX IF NOT EXISTS infergate_usage_time ON infergate_usage (time);
CREATE INDEX IF NOT EXISTS infergate_usage_request ON infergate_usage (tenant, request_id);
CREATE OR REPLACE VIEW infergate_usage_hourly AS
	SELECT date_trunc('hour', time) AS hour, tenant, key, model,
		count(*) AS requests, sum(prompt_tokens) AS prompt_tokens,
		sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens,
		sum(cost_usd) AS cost_usd
	FROM infergate_usage GROUP BY 1, 2, 3, 4;
CREATE TABLE IF NOT EXISTS infergate_feedback (
	entry_id   text PRIMARY KEY REFERENCES infergate_usage (entry_id),
	tenant     text NOT NULL,
	request_id text NOT NULL,
	model      text NOT NULL,
	score      double precision NOT NULL,
	label      text NOT NULL,
	comment    text NOT NULL,
	time       timestamptz NOT NULL
);
`

// Migrate creates the ledger's tables and view when they are missing.
func Migrate(ctx context.Context, db *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("create ledger tables: %w", err)
	}
	return nil
}

const insertEntry = `INSERT INTO infergate_usage (entry_id, request_id, time, tenant, key, model, endpoint, status,
	stream, prompt_tokens, completion_tokens, cached_tokens, cost_usd, node)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
	ON CONFLICT (entry_id) DO NOTHING`

// insert writes entries in one transaction; entries already there are
// left as they are.
func insert(ctx context.Context, db *pgxpool.Pool, batch []spooled) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var b pgx.Batch
		for i := range batch {
			e := &batch[i].entry
			b.Queue(insertEntry, e.EntryID, e.RequestID, e.Time, e.Tenant, e.Key, e.Model, e.Endpoint, e.Status,
				e.Stream, e.PromptTokens, e.CompletionTokens, e.CachedTokens, e.CostUSD, e.Node)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}
