package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/infergate/infergate/agent/xdpattach"
)

// defaultBPFFS is where the agent expects bpffs (its pin directory lies
// under it).
const defaultBPFFS = "/sys/fs/bpf"

// newAgentMountBPFFSCmd is the DaemonSet's init container: the one step
// that needs CAP_SYS_ADMIN (mount), kept out of the long-running agent.
func newAgentMountBPFFSCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "mount-bpffs",
		Short: "Mount bpffs where the agent pins its maps, unless it is mounted (needs CAP_SYS_ADMIN)",
		Long: `mount-bpffs mounts a BPF filesystem at --path unless one is already there, and
does nothing otherwise. On Kubernetes it runs as the agent's init container, the
only container with CAP_SYS_ADMIN, on a host path mounted with Bidirectional
propagation, so the host and the agent container (which has no SYS_ADMIN) see
the same bpffs and the agent's pins outlive its pods.`,
		Example: `  infergate agent mount-bpffs
  infergate agent mount-bpffs --path=/sys/fs/bpf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mounted, err := xdpattach.MountBPFFS(path)
			if err != nil {
				return err
			}
			if mounted {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "mounted bpffs at %s\n", path)
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "bpffs already mounted at %s\n", path)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&path, "path", defaultBPFFS, "where to mount bpffs")
	return cmd
}
