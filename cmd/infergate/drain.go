package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDrainCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Withdraw this balancer's BGP routes (it keeps forwarding what still arrives)",
		Long: `drain makes this balancer node withdraw the VIP routes it announces over BGP,
keeping its sessions and its forwarding, so routers move its flows to the other
balancer nodes (which steer them to the same backends). The node stays drained
across agent restarts until "infergate drain --undo".`,
		Example: `  infergate drain && sleep 30 && infergate agent uninstall
  infergate drain --undo`,
		Args: usageArgs(cobra.NoArgs),
	}
	undo := cmd.Flags().Bool("undo", false, "announce the routes again")
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := cfg.client().Drain(cmd.Context(), !*undo)
		if err != nil {
			return agentError(err)
		}
		if *out != outTable {
			return render(cmd.OutOrStdout(), *out, s, nil)
		}
		switch {
		case *undo:
			fmt.Fprintln(cmd.OutOrStdout(), "node undrained: its VIP routes are announced while its data plane is healthy")
		case s.BGP == nil:
			fmt.Fprintln(cmd.OutOrStdout(), "node drained (its policy announces nothing over BGP)")
		default:
			fmt.Fprintln(cmd.OutOrStdout(), "node drained: its VIP routes are withdrawn; it keeps forwarding")
		}
		return nil
	}
	return cmd
}
