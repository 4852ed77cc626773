package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Output formats every read command accepts with -o.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// maxStdinBytes bounds a document read with -f - (one byte over the limit
// lets policy.Decode say it is too large).
const maxStdinBytes = policy.MaxDocumentBytes + 1

// cliConfig is what the CLI's commands share: where the agent is.
type cliConfig struct {
	socket string
}

func (c *cliConfig) client() *api.Client { return api.NewClient(c.socket) }

// addCLICommands registers the management commands and their global flags.
func addCLICommands(root *cobra.Command) {
	cfg := &cliConfig{}
	// Bad flags are usage errors, for every command.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	root.PersistentFlags().StringVar(&cfg.socket, "socket", envOr("INFERGATE_SOCKET", api.DefaultSocket),
		"the agent's unix socket (env INFERGATE_SOCKET)")
	root.AddCommand(
		newPolicyCmd(cfg),
		newStatusCmd(cfg),
		newDrainCmd(cfg),
		newBackendsCmd(cfg),
		newStatsCmd(cfg),
		newKeysCmd(cfg),
		newTopCmd(cfg),
		newCompletionCmd(),
	)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// usageArgs makes a positional-argument check's failure a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return withCode(exitUsage, check(cmd, args))
	}
}

// outputFlag adds -o/--output to a command.
func outputFlag(cmd *cobra.Command, def string) *string {
	var out string
	cmd.Flags().StringVarP(&out, "output", "o", def, "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{outTable, outJSON, outYAML}, cobra.ShellCompDirectiveNoFileComp
	})
	// Checked before RunE so a bad -o fails before any request is made.
	cmd.PreRunE = func(*cobra.Command, []string) error { return checkOutput(out) }
	return &out
}

func checkOutput(format string) error {
	switch format {
	case outTable, outJSON, outYAML:
		return nil
	}
	return withCode(exitUsage, fmt.Errorf("unknown output format %q (use table, json or yaml)", format))
}

// render writes v as JSON or YAML (field names as in JSON), or calls table.
func render(w io.Writer, format string, v any, table func(*tabwriter.Writer)) error {
	switch format {
	case outJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case outYAML:
		return writeYAML(w, v)
	case outTable:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	return checkOutput(format)
}

// writeYAML goes through JSON so YAML keys match the API's JSON names.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	return enc.Close()
}

// row writes one tab-separated table row.
func row(w io.Writer, cols ...any) {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(parts, "\t"))
}

// agentError maps client errors to exit codes scripts can rely on.
func agentError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, api.ErrUnavailable) {
		return withCode(exitUnavailable, err)
	}
	var ae *api.Error
	if errors.As(err, &ae) && len(ae.Problems) > 0 {
		return withCode(exitInvalid, err)
	}
	if errors.As(err, &ae) && ae.Status == 400 {
		return withCode(exitInvalid, err)
	}
	return err
}

// readDocument reads -f: a file, or stdin for "-".
func readDocument(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "" {
		return nil, withCode(exitUsage, errors.New("-f is required (a file, or - for stdin)"))
	}
	var r io.Reader
	if file == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading policy: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxStdinBytes))
	if err != nil {
		return nil, fmt.Errorf("reading policy from %s: %w", file, err)
	}
	return b, nil
}

// fileLabel names the document's source in messages.
func fileLabel(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
