// Command iglab runs the pieces of infergate's namespace lab that are not
// infergate itself:
//
//	iglab backend --listen :8080 --host gpu-1 [--ttft 20ms --tokens-per-s 200]
//	    a GPU host's mock inference server (test/mockllm) that names itself
//	    and the addresses it saw in response headers, so a test or the demo
//	    can tell which host answered and that it saw the VIP (DSR).
//	iglab demo --infergate bin/infergate
//	    the `make demo` walk-through (see scripts/demo.sh).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: iglab backend|demo [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "backend":
		err = runBackend(os.Args[2:])
	case "up":
		err = runUp(os.Args[2:])
	case "demo":
		err = runDemo(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q (backend or demo)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "iglab:", err)
		os.Exit(1)
	}
}
