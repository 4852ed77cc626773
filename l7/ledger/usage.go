package ledger

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Dimensions Usage can group by, as named on the command line.
var Dimensions = []string{"tenant", "key", "model", "hour", "endpoint", "status", "node"}

// UsageRow is one group's totals. Group holds the grouped dimensions'
// values in the order asked for.
type UsageRow struct {
	Group            []string `json:"-"`
	Requests         int64    `json:"requests"`
	PromptTokens     int64    `json:"prompt_tokens"`
	CompletionTokens int64    `json:"completion_tokens"`
	CachedTokens     int64    `json:"cached_tokens"`
	CostUSD          float64  `json:"cost_usd"`
	// Feedback: how many scores the group's requests got and their mean
	// (PostgreSQL only: feedback is stored there).
	Feedback      int64   `json:"feedback"`
	FeedbackScore float64 `json:"feedback_score,omitempty"`
}

// CheckDimensions refuses a dimension Usage does not know.
func CheckDimensions(by []string) error {
	seen := map[string]bool{}
	for _, d := range by {
		ok := false
		for _, k := range Dimensions {
			ok = ok || d == k
		}
		if !ok {
			return fmt.Errorf("unknown dimension %q (use %s)", d, strings.Join(Dimensions, ", "))
		}
		if seen[d] {
			return fmt.Errorf("dimension %q named twice", d)
		}
		seen[d] = true
	}
	return nil
}

// column is the SQL for a dimension (names are checked against
// Dimensions first, never interpolated from input otherwise).
func column(d string) string {
	switch d {
	case "hour":
		return "to_char(date_trunc('hour', u.time) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00Z')"
	case "status":
		return "u.status::text"
	}
	return "u." + d
}

// UsagePostgres totals the ledger rows since since, grouped by by.
func UsagePostgres(ctx context.Context, db *pgxpool.Pool, since time.Time, by []string) ([]UsageRow, error) {
	if err := CheckDimensions(by); err != nil {
		return nil, err
	}
	cols := make([]string, len(by))
	for i, d := range by {
		cols[i] = column(d) + " AS g" + fmt.Sprint(i)
	}
	sel := strings.Join(append(cols, "count(*)", "coalesce(sum(u.prompt_tokens),0)::bigint",
		"coalesce(sum(u.completion_tokens),0)::bigint", "coalesce(sum(u.cached_tokens),0)::bigint",
		"coalesce(sum(u.cost_usd),0)", "count(f.score)", "coalesce(avg(f.score),0)"), ", ")
	q := "SELECT " + sel + " FROM infergate_usage u LEFT JOIN infergate_feedback f ON f.entry_id = u.entry_id WHERE u.time >= $1"
	if len(by) > 0 {
		groups := make([]string, len(by))
		for i := range by {
			groups[i] = fmt.Sprint(i + 1)
		}
		q += " GROUP BY " + strings.Join(groups, ", ") + " ORDER BY " + strings.Join(groups, ", ")
	}
	rows, err := db.Query(ctx, q, since)
	if err != nil {
		return nil, fmt.Errorf("query the ledger: %w", err)
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		r := UsageRow{Group: make([]string, len(by))}
		dst := make([]any, 0, len(by)+7)
		for i := range r.Group {
			dst = append(dst, &r.Group[i])
		}
		dst = append(dst, &r.Requests, &r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &r.CostUSD, &r.Feedback, &r.FeedbackScore)
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("query the ledger: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query the ledger: %w", err)
	}
	return out, nil
}

// UsageSpool totals the spool's entries since since, grouped by by.
func UsageSpool(s *Spool, since time.Time, by []string) ([]UsageRow, error) {
	if err := CheckDimensions(by); err != nil {
		return nil, err
	}
	groups := map[string]*UsageRow{}
	err := s.Each(func(e *Entry) error {
		if e.Time.Before(since) {
			return nil
		}
		g := make([]string, len(by))
		for i, d := range by {
			g[i] = e.dimension(d)
		}
		k := strings.Join(g, "\x00")
		r := groups[k]
		if r == nil {
			r = &UsageRow{Group: g}
			groups[k] = r
		}
		r.Requests++
		r.PromptTokens += e.PromptTokens
		r.CompletionTokens += e.CompletionTokens
		r.CachedTokens += e.CachedTokens
		r.CostUSD += e.CostUSD
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]UsageRow, 0, len(groups))
	for _, r := range groups {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i].Group, "\x00") < strings.Join(out[j].Group, "\x00") })
	return out, nil
}

func (e *Entry) dimension(d string) string {
	switch d {
	case "tenant":
		return e.Tenant
	case "key":
		return e.Key
	case "model":
		return e.Model
	case "hour":
		return e.Time.UTC().Truncate(time.Hour).Format("2006-01-02T15:00Z")
	case "endpoint":
		return e.Endpoint
	case "status":
		return fmt.Sprint(e.Status)
	case "node":
		return e.Node
	}
	return ""
}
