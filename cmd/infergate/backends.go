package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/infergate/infergate/agent/api"
	"github.com/spf13/cobra"
)

func newBackendsCmd(cfg *cliConfig) *cobra.Command {
	var pool string
	cmd := &cobra.Command{
		Use:   "backends",
		Short: "List pool backends: configured and effective weight, health, GPU load, traffic",
		Example: `  infergate backends
  infergate backends --pool gpu-a -o yaml`,
		Args: usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.Flags().StringVar(&pool, "pool", "", "only this pool's backends")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		all, err := cfg.client().Backends(cmd.Context())
		if err != nil {
			return agentError(err)
		}
		bs := all[:0:0]
		for _, b := range all {
			if pool == "" || b.Pool == pool {
				bs = append(bs, b)
			}
		}
		if bs == nil {
			bs = []api.Backend{}
		}
		return render(cmd.OutOrStdout(), *out, bs, func(w *tabwriter.Writer) {
			row(w, "POOL", "BACKEND", "ADDRESS", "STATE", "HEALTHY", "WEIGHT", "KV-CACHE", "GPU", "RUNNING", "WAITING", "PACKETS", "BYTES", "FLOWS")
			for _, b := range bs {
				kv, gpu, run, wait := "-", "-", "-", "-"
				if l := b.Load; l != nil {
					stale := ""
					if l.Stale {
						stale = " (stale)"
					}
					kv = fmt.Sprintf("%.0f%%%s", l.KVCacheUsage*100, stale)
					gpu = fmt.Sprintf("%.0f%%", l.GPUUtil*100)
					run, wait = fmt.Sprintf("%g", l.Running), fmt.Sprintf("%g", l.Waiting)
				}
				row(w, b.Pool, b.Name, backendAddr(b), b.State, yesNo(b.Healthy),
					weightString(b), kv, gpu, run, wait, b.Packets, humanBytes(b.Bytes), b.NewFlows)
			}
		})
	}
	return cmd
}

func backendAddr(b api.Backend) string {
	if b.Port == 0 {
		return b.Address
	}
	if len(b.Address) > 0 && containsColon(b.Address) {
		return fmt.Sprintf("[%s]:%d", b.Address, b.Port)
	}
	return fmt.Sprintf("%s:%d", b.Address, b.Port)
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// weightString shows the effective weight, and the configured one when the
// GPU-load scorer moved it.
func weightString(b api.Backend) string {
	if b.Weight == b.ConfiguredWeight {
		return fmt.Sprint(b.Weight)
	}
	return fmt.Sprintf("%d/%d", b.Weight, b.ConfiguredWeight)
}
