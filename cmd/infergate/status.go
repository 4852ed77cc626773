package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's state: policy in force, attached programs, reconciles",
		Example: `  infergate status
  infergate status -o json | jq .policy.version`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := cfg.client().Status(cmd.Context())
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, s, func(w *tabwriter.Writer) {
			pol := "none"
			if s.Policy.Version != "" {
				pol = fmt.Sprintf("%s (version %s)", s.Policy.Name, s.Policy.Version)
			}
			fmt.Fprintf(w, "Agent:\t%s\n", s.Version)
			if s.Role != "" {
				fmt.Fprintf(w, "Role:\t%s\n", s.Role)
			}
			fmt.Fprintf(w, "Started:\t%s\n", s.StartedAt.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "Policy:\t%s\n", pol)
			fmt.Fprintf(w, "Reconciles:\t%d (%d failed)\n", s.Reconciles, s.ReconcileErrors)
			if s.LastError != "" {
				fmt.Fprintf(w, "Last error:\t%s\n", s.LastError)
			}
			if b := s.BGP; b != nil {
				state := fmt.Sprintf("announcing %s", strings.Join(b.Announced, ", "))
				if b.Withdrawn != "" {
					state = "withdrawn: " + b.Withdrawn
				}
				fmt.Fprintf(w, "BGP:\t%s\n", state)
				for _, p := range b.Peers {
					fmt.Fprintf(w, "BGP peer:\t%s AS %d %s\n", p.Address, p.ASN, p.State)
				}
			}
			if len(s.Interfaces) > 0 {
				fmt.Fprintln(w)
				row(w, "INTERFACE", "PROGRAM", "MODE", "ATTACHED")
				for _, i := range s.Interfaces {
					row(w, i.Name, i.Program, i.Mode, yesNo(i.Attached))
				}
			}
		})
	}
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
