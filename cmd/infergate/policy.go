package main

import (
	"bytes"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/policy"
	"github.com/spf13/cobra"
)

// timeLayout is how tables print instants (UTC, to the second).
const timeLayout = "2006-01-02 15:04:05Z07:00"

func newPolicyCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, apply and inspect the declarative policy",
		Long: `A policy is one YAML document (apiVersion infergate.dev/v1alpha1, kind
Policy) that declares the firewall, client classes, VIPs and pools, tenants,
keys, models, routes and inspection rules. The agent keeps every applied
version and can roll back to any of them.`,
	}
	cmd.AddCommand(
		newPolicyValidateCmd(),
		newPolicyApplyCmd(cfg),
		newPolicyGetCmd(cfg),
		newPolicyDiffCmd(cfg),
		newPolicyDeleteCmd(cfg),
		newPolicyHistoryCmd(cfg),
		newPolicyRollbackCmd(cfg),
		newPolicySchemaCmd(),
	)
	return cmd
}

// validateResult is what `policy validate -o json|yaml` prints.
type validateResult struct {
	Valid    bool             `json:"valid"`
	Name     string           `json:"name,omitempty"`
	Version  string           `json:"version,omitempty"`
	Problems []policy.Problem `json:"problems,omitempty"`
}

// loadLocal decodes and compiles a document, mapping refusal to exitInvalid.
func loadLocal(b []byte) (*policy.Compiled, error) {
	_, c, err := policy.Load(bytes.NewReader(b))
	if err != nil {
		var ve *policy.ValidationError
		if errors.As(err, &ve) {
			return nil, withCode(exitInvalid, err)
		}
		return nil, err
	}
	return c, nil
}

func newPolicyValidateCmd() *cobra.Command {
	var file string
	var canonical bool
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a policy document offline, reporting every problem with its line",
		Example: `  infergate policy validate -f policy.yaml
  cat policy.yaml | infergate policy validate -f -
  infergate policy validate -f policy.yaml --canonical   # print with defaults filled in`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the document (- for stdin)")
	cmd.Flags().BoolVar(&canonical, "canonical", false, "print the canonical document (defaults filled in) instead of a summary")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		b, err := readDocument(cmd, file)
		if err != nil {
			return err
		}
		c, err := loadLocal(b)
		res := validateResult{Valid: err == nil}
		var ve *policy.ValidationError
		switch {
		case err == nil:
			res.Name, res.Version = c.Name, c.Version
		case errors.As(err, &ve):
			res.Problems = ve.Problems
		default:
			return err
		}
		if canonical && err == nil {
			y, merr := policy.Marshal(c.Document())
			if merr != nil {
				return merr
			}
			_, werr := cmd.OutOrStdout().Write(y)
			return werr
		}
		if *out == outTable {
			if err != nil {
				return err // printed by main, with exitInvalid
			}
			_, werr := fmt.Fprintf(cmd.OutOrStdout(), "%s: policy %q is valid (version %s)\n", fileLabel(file), c.Name, c.Version)
			return werr
		}
		if rerr := render(cmd.OutOrStdout(), *out, res, nil); rerr != nil {
			return rerr
		}
		if err != nil {
			return withCode(exitInvalid, errors.New("policy is invalid"))
		}
		return nil
	}
	return cmd
}

func newPolicyApplyCmd(cfg *cliConfig) *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Apply a policy: all or nothing across the kernel and the gateway",
		Long: `Apply validates the document here first (so mistakes are reported with
line numbers even when the agent is down), then sends it to the agent, which
validates it again, applies it to the kernel maps and the L7 gateway together,
and records it in its history. A failed apply leaves the running version in force.`,
		Example: `  infergate policy apply -f policy.yaml
  infergate policy apply -f policy.yaml --dry-run
  generate-policy | infergate policy apply -f -`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the document (- for stdin)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "have the agent check the document without applying it")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		b, err := readDocument(cmd, file)
		if err != nil {
			return err
		}
		if _, err := loadLocal(b); err != nil {
			return err
		}
		res, err := cfg.client().ApplyPolicy(cmd.Context(), b, dryRun)
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, res, func(w *tabwriter.Writer) {
			verb := "applied"
			switch {
			case dryRun && res.Changed:
				verb = "would be applied (dry run)"
			case dryRun:
				verb = "is already in force (dry run)"
			case !res.Changed:
				verb = "unchanged"
			}
			fmt.Fprintf(w, "policy %q %s: version %s\n", res.Name, verb, res.Version)
		})
	}
	return cmd
}

func newPolicyGetCmd(cfg *cliConfig) *cobra.Command {
	var docOnly bool
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Show the policy in force",
		Example: `  infergate policy get
  infergate policy get --document > running.yaml
  infergate policy get -o json`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.Flags().BoolVar(&docOnly, "document", false, "print only the YAML document as it was applied")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pv, err := cfg.client().GetPolicy(cmd.Context())
		if api.IsNotFound(err) {
			return errors.New("no policy is applied")
		}
		if err != nil {
			return agentError(err)
		}
		if docOnly {
			_, err := fmt.Fprint(cmd.OutOrStdout(), pv.Document)
			return err
		}
		return render(cmd.OutOrStdout(), *out, pv, func(w *tabwriter.Writer) {
			row(w, "NAME", "VERSION", "APPLIED")
			row(w, pv.Name, pv.Version, pv.AppliedAt.UTC().Format(timeLayout))
		})
	}
	return cmd
}

// diffResult is what `policy diff -o json|yaml` prints.
type diffResult struct {
	From    string `json:"from"` // version in force, empty when none
	To      string `json:"to"`
	Changed bool   `json:"changed"`
	Diff    string `json:"diff,omitempty"`
}

func newPolicyDiffCmd(cfg *cliConfig) *cobra.Command {
	var file string
	var exitCodeFlag bool
	cmd := &cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what applying a document would change (canonical forms, diff -u)",
		Long: `Diff compares the canonical form (defaults filled in, addresses normalised)
of the policy in force with that of the document, so only real changes show.`,
		Example: `  infergate policy diff -f policy.yaml
  infergate policy diff -f policy.yaml --exit-code && echo "nothing to apply"`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the document (- for stdin)")
	cmd.Flags().BoolVar(&exitCodeFlag, "exit-code", false, "exit with 1 when there are differences")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		b, err := readDocument(cmd, file)
		if err != nil {
			return err
		}
		next, err := loadLocal(b)
		if err != nil {
			return err
		}
		nextY, err := policy.Marshal(next.Document())
		if err != nil {
			return err
		}
		res := diffResult{To: next.Version}
		var curY []byte
		curName := "running (none)"
		pv, err := cfg.client().GetPolicy(cmd.Context())
		switch {
		case api.IsNotFound(err):
		case err != nil:
			return agentError(err)
		default:
			res.From = pv.Version
			curName = fmt.Sprintf("running %s", pv.Version)
			cur, lerr := loadLocal([]byte(pv.Document))
			if lerr != nil {
				// A document this CLI cannot compile (a newer agent):
				// compare the text as applied.
				curY = []byte(pv.Document)
			} else if curY, err = policy.Marshal(cur.Document()); err != nil {
				return err
			}
		}
		var d bytes.Buffer
		res.Changed, err = unifiedDiff(&d, curName, fmt.Sprintf("%s %s", fileLabel(file), next.Version), string(curY), string(nextY))
		if err != nil {
			return err
		}
		res.Diff = d.String()
		err = render(cmd.OutOrStdout(), *out, res, func(w *tabwriter.Writer) {
			if res.Changed {
				// Straight to the command's output: tabwriter would
				// realign tabs inside the documents.
				return
			}
			fmt.Fprintf(w, "no changes: version %s is in force\n", next.Version)
		})
		if err != nil {
			return err
		}
		if *out == outTable && res.Changed {
			if _, err := cmd.OutOrStdout().Write(d.Bytes()); err != nil {
				return err
			}
		}
		if res.Changed && exitCodeFlag {
			return withCode(exitError, errors.New("the document differs from the policy in force"))
		}
		return nil
	}
	return cmd
}

// deleteResult is what delete and revoke print with -o json|yaml.
type deleteResult struct {
	Deleted string `json:"deleted"`
}

func newPolicyDeleteCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Remove the policy in force (the data plane then steers nothing)",
		Long: `Delete removes the applied policy: VIPs stop being steered and the gateway
serves no models. The history is kept, so "policy rollback previous" restores it.`,
		Example: "  infergate policy delete",
		Args:    usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		err := cfg.client().DeletePolicy(cmd.Context())
		if api.IsNotFound(err) {
			return errors.New("no policy is applied")
		}
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, deleteResult{Deleted: "policy"}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "policy deleted")
		})
	}
	return cmd
}

func newPolicyHistoryCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "history",
		Short:   "List applied versions, newest first",
		Example: "  infergate policy history\n  infergate policy history -o json",
		Args:    usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		h, err := cfg.client().History(cmd.Context())
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, h, func(w *tabwriter.Writer) {
			row(w, "VERSION", "NAME", "APPLIED", "CURRENT")
			for _, v := range h {
				cur := ""
				if v.Current {
					cur = "*"
				}
				row(w, v.Version, v.Name, v.AppliedAt.UTC().Format(timeLayout), cur)
			}
		})
	}
	return cmd
}

func newPolicyRollbackCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback [VERSION|previous]",
		Short: "Re-apply a version from the history (default: the previous one)",
		Example: `  infergate policy rollback
  infergate policy rollback 3f2a9c41d07b5e18`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
	}
	out := outputFlag(cmd, outTable)
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		h, err := cfg.client().History(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		out := []string{api.RollbackPrevious}
		for _, v := range h {
			out = append(out, v.Version+"\t"+v.Name+" "+v.AppliedAt.UTC().Format(time.RFC3339))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		to := api.RollbackPrevious
		if len(args) == 1 {
			to = args[0]
		}
		res, err := cfg.client().Rollback(cmd.Context(), to)
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, res, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "rolled back to policy %q version %s\n", res.Name, res.Version)
		})
	}
	return cmd
}

func newPolicySchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of policy documents (for editors)",
		Example: `  infergate policy schema > infergate-policy.schema.json
  # then, with the YAML language server, start a document with:
  # yaml-language-server: $schema=./infergate-policy.schema.json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := policy.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
