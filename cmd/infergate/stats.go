package main

import (
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newStatsCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show data-plane counters: verdicts, drops by reason, per-VIP traffic, map fill",
		Example: `  infergate stats
  infergate stats -o json | jq .drops`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := cfg.client().Stats(cmd.Context())
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, s, func(w *tabwriter.Writer) {
			row(w, "VERDICT", "PACKETS")
			for _, k := range sortedKeys(s.Verdicts) {
				row(w, k, s.Verdicts[k])
			}
			fmt.Fprintln(w)
			row(w, "DROP REASON", "PACKETS")
			for _, k := range sortedKeys(s.Drops) {
				row(w, k, s.Drops[k])
			}
			fmt.Fprintln(w)
			row(w, "VIP", "PACKETS", "BYTES", "NEW FLOWS")
			for _, v := range s.VIPs {
				row(w, v.Name, v.Packets, humanBytes(v.Bytes), v.NewFlows)
			}
			fmt.Fprintln(w)
			row(w, "MAP", "ENTRIES", "MAX", "FULL")
			for _, m := range s.Maps {
				full := "-"
				if m.MaxEntries > 0 {
					full = fmt.Sprintf("%.1f%%", 100*float64(m.Entries)/float64(m.MaxEntries))
				}
				row(w, m.Name, m.Entries, m.MaxEntries, full)
			}
		})
	}
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
