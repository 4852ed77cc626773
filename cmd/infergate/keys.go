package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/infergate/infergate/agent/api"
	"github.com/spf13/cobra"
)

func newKeysCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke tenant API keys",
		Long: `The agent generates a key, adds only its SHA-256 hash to the policy's
gateway keys and applies that as a new policy version. The key itself is
printed once, by "keys create", and cannot be shown again.`,
	}
	cmd.AddCommand(newKeysCreateCmd(cfg), newKeysListCmd(cfg), newKeysRevokeCmd(cfg))
	return cmd
}

func newKeysCreateCmd(cfg *cliConfig) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "create NAME --tenant TENANT",
		Short: "Create a key for a tenant and print it (once)",
		Example: `  infergate keys create alice-ci --tenant alice
  KEY=$(infergate keys create alice-ci --tenant alice -o json | jq -r .key)`,
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	out := outputFlag(cmd, outTable)
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant the key belongs to (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if tenant == "" {
			return withCode(exitUsage, errors.New("--tenant is required"))
		}
		k, err := cfg.client().CreateKey(cmd.Context(), args[0], tenant)
		if err != nil {
			return agentError(err)
		}
		if err := render(cmd.OutOrStdout(), *out, k, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "key %q for tenant %q:\n\n  %s\n\n", k.Name, k.Tenant, k.Key)
		}); err != nil {
			return err
		}
		if *out == outTable {
			fmt.Fprintln(cmd.ErrOrStderr(), "Store it now: only its hash is kept, it cannot be shown again.")
		}
		return nil
	}
	return cmd
}

func newKeysListCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List keys (name, tenant, start of the hash; never the key)",
		Example: "  infergate keys list",
		Args:    usageArgs(cobra.NoArgs),
	}
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		keys, err := cfg.client().ListKeys(cmd.Context())
		if err != nil {
			return agentError(err)
		}
		if keys == nil {
			keys = []api.Key{}
		}
		return render(cmd.OutOrStdout(), *out, keys, func(w *tabwriter.Writer) {
			row(w, "NAME", "TENANT", "HASH")
			for _, k := range keys {
				row(w, k.Name, k.Tenant, "sha256:"+k.HashPrefix+"…")
			}
		})
	}
	return cmd
}

func newKeysRevokeCmd(cfg *cliConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke NAME",
		Short:   "Revoke a key: the agent applies a policy without it, refused at once",
		Example: "  infergate keys revoke alice-ci",
		Args:    usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			keys, err := cfg.client().ListKeys(cmd.Context())
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, k := range keys {
				names = append(names, k.Name+"\t"+k.Tenant)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	}
	out := outputFlag(cmd, outTable)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		err := cfg.client().RevokeKey(cmd.Context(), args[0])
		if api.IsNotFound(err) {
			return fmt.Errorf("no key named %q", args[0])
		}
		if err != nil {
			return agentError(err)
		}
		return render(cmd.OutOrStdout(), *out, deleteResult{Deleted: "key/" + args[0]}, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "key %q revoked\n", args[0])
		})
	}
	return cmd
}
