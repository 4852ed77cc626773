package main

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Set by the linker: -X main.version=...
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes scripts can rely on.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInvalid     = 3 // a document or request was refused as invalid
	exitUnavailable = 4 // the agent is not running or its socket is not accessible
)

// exitError carries a specific exit code through cobra.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

func exitCode(err error) int {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitError
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "infergate",
		Short: "AI gateway with an XDP fast path",
		Long: `infergate stops abuse in XDP before it costs a GPU second, steers
connections by real GPU load with weighted Maglev, and understands AI requests
in its L7 gateway (auth, exact token counting, tenant limits, prompt inspection,
model routing).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd())
	root.AddCommand(newGatewayCmd())
	root.AddCommand(newUsageCmd())
	root.AddCommand(newAgentCmd())
	addCLICommands(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "infergate %s (commit %s, %s)\n", version, commit, runtime.Version())
			return err
		},
	}
}
