// Command infergate is the AI gateway's single binary: node agent, L7
// gateway and the kubectl-style CLI that manages them.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}
