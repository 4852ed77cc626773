package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Example: `  source <(infergate completion bash)
  infergate completion zsh > "${fpath[1]}/_infergate"
  infergate completion fish > ~/.config/fish/completions/infergate.fish`,
		Args:      usageArgs(cobra.ExactArgs(1)),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, w := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			case "fish":
				return root.GenFishCompletion(w, true)
			}
			return withCode(exitUsage, fmt.Errorf("unknown shell %q (bash, zsh or fish)", args[0]))
		},
	}
}
