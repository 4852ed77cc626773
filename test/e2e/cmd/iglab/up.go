package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/infergate/infergate/test/e2e/lab"
)

// maxHold bounds how long `iglab up` keeps a lab.
const maxHold = time.Hour

// runUp builds the lab with the standard policy and keeps it until
// interrupted or --hold passes: for poking at it by hand.
func runUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	inf := fs.String("infergate", "bin/infergate", "infergate binary")
	dir := fs.String("dir", "", "state, sockets and logs (default: a new temp dir)")
	hold := fs.Duration("hold", 10*time.Minute, "tear down after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hold > maxHold {
		return fmt.Errorf("--hold %s: at most %s", *hold, maxHold)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "iglab-"); err != nil {
			return err
		}
	}
	l, err := lab.New(lab.Config{Prefix: "igu", Infergate: *inf, Iglab: self, Dir: *dir})
	if err != nil {
		return err
	}
	defer l.Close()
	doc, err := l.PolicyYAML(lab.PolicyOptions{Name: "up", HealthCheck: true, Deny: true})
	if err != nil {
		return err
	}
	pf, err := l.WritePolicy("up", doc)
	if err != nil {
		return err
	}
	if err := l.StartAll(pf); err != nil {
		return err
	}
	fmt.Printf("lab up in %s; namespaces %s-*; balancer socket %s\n", *dir, l.Topo.Prefix, l.AgentSocket(l.Balancer.Name))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(*hold):
	}
	return nil
}
