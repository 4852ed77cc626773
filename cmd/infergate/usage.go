package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/infergate/infergate/l7/ledger"
	"github.com/infergate/infergate/policy"
)

const outCSV = "csv"

// usageQueryTimeout bounds one query of the ledger.
const usageQueryTimeout = 60 * time.Second

func newUsageCmd() *cobra.Command {
	var file, spool, dsnFile, out, byFlag string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "usage [-f policy.yaml | --spool FILE | --dsn-file FILE] [--since 24h] [--by tenant,model]",
		Short: "Show usage from the billing ledger (PostgreSQL, or the local spool)",
		Long: `Show requests, prompt, completion and cached tokens, cost and feedback
from the usage ledger, grouped by the dimensions --by names (tenant, key,
model, hour, endpoint, status, node). The ledger is read from PostgreSQL
when the policy's gateway.ledger.postgres (or --dsn-file) names one,
otherwise from the local spool, which bbolt locks while a gateway runs on
it: stop the gateway or read PostgreSQL.`,
		Args: usageArgs(cobra.NoArgs),
		PreRunE: func(*cobra.Command, []string) error {
			switch out {
			case outTable, outJSON, outYAML, outCSV:
			default:
				return withCode(exitUsage, fmt.Errorf("unknown output format %q (use table, json, yaml or csv)", out))
			}
			if since <= 0 {
				return withCode(exitUsage, errors.New("--since must be positive"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var by []string
			if byFlag != "" {
				by = strings.Split(byFlag, ",")
			}
			if err := ledger.CheckDimensions(by); err != nil {
				return withCode(exitUsage, fmt.Errorf("--by: %w", err))
			}
			if file != "" {
				b, err := readDocument(cmd, file)
				if err != nil {
					return err
				}
				_, c, err := policy.Load(strings.NewReader(string(b)))
				if err != nil {
					return withCode(exitInvalid, err)
				}
				if spool == "" {
					spool = c.Gateway.Ledger.Spool
				}
				if dsnFile == "" {
					dsnFile = c.Gateway.Ledger.Postgres.DSNFile
				}
			}
			from := time.Now().Add(-since)
			var rows []ledger.UsageRow
			switch {
			case dsnFile != "":
				b, err := os.ReadFile(dsnFile)
				if err != nil {
					return fmt.Errorf("--dsn-file: %w", err)
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), usageQueryTimeout)
				defer cancel()
				db, err := pgxpool.New(ctx, strings.TrimSpace(string(b)))
				if err != nil {
					return errors.New("the ledger's PostgreSQL DSN does not parse")
				}
				defer db.Close()
				if rows, err = ledger.UsagePostgres(ctx, db, from, by); err != nil {
					return withCode(exitUnavailable, err)
				}
			case spool != "":
				s, err := ledger.OpenSpoolReadOnly(spool)
				if err != nil {
					return withCode(exitUnavailable, err)
				}
				defer s.Close()
				if rows, err = ledger.UsageSpool(s, from, by); err != nil {
					return err
				}
			default:
				return withCode(exitUsage, errors.New("no ledger: give -f with a policy whose gateway.ledger is set, --spool or --dsn-file"))
			}
			return writeUsage(cmd.OutOrStdout(), out, by, rows)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "policy document naming the ledger (gateway.ledger)")
	cmd.Flags().StringVar(&spool, "spool", "", "the ledger spool file (overrides the policy's)")
	cmd.Flags().StringVar(&dsnFile, "dsn-file", "", "file holding the ledger's PostgreSQL DSN (overrides the policy's)")
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "how far back to total")
	cmd.Flags().StringVar(&byFlag, "by", "tenant,model", "dimensions to group by, comma-separated ("+strings.Join(ledger.Dimensions, ", ")+")")
	cmd.Flags().StringVarP(&out, "output", "o", outTable, "output format: table, json, yaml or csv")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{outTable, outJSON, outYAML, outCSV}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// usageJSON is one row as JSON and YAML show it: the dimensions by name.
func usageJSON(by []string, r ledger.UsageRow) map[string]any {
	m := map[string]any{}
	b, _ := json.Marshal(r)
	_ = json.Unmarshal(b, &m)
	for i, d := range by {
		m[d] = r.Group[i]
	}
	return m
}

func writeUsage(w io.Writer, format string, by []string, rows []ledger.UsageRow) error {
	head := append(append([]string(nil), by...), "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "feedback", "feedback_score")
	cells := func(r ledger.UsageRow) []string {
		return append(append([]string(nil), r.Group...), strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.PromptTokens, 10),
			strconv.FormatInt(r.CompletionTokens, 10), strconv.FormatInt(r.CachedTokens, 10), strconv.FormatFloat(r.CostUSD, 'f', 6, 64),
			strconv.FormatInt(r.Feedback, 10), strconv.FormatFloat(r.FeedbackScore, 'f', 2, 64))
	}
	switch format {
	case outCSV:
		cw := csv.NewWriter(w)
		_ = cw.Write(head)
		for _, r := range rows {
			_ = cw.Write(cells(r))
		}
		cw.Flush()
		return cw.Error()
	case outJSON, outYAML:
		out := make([]map[string]any, 0, len(rows))
		for _, r := range rows {
			out = append(out, usageJSON(by, r))
		}
		return render(w, format, out, nil)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	upper := make([]any, len(head))
	for i, h := range head {
		upper[i] = strings.ToUpper(h)
	}
	row(tw, upper...)
	for _, r := range rows {
		c := cells(r)
		cols := make([]any, len(c))
		for i := range c {
			cols[i] = c[i]
		}
		row(tw, cols...)
	}
	return tw.Flush()
}
