package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "infergate ") {
		t.Fatalf("version output %q", out.String())
	}
}

// The agent serves on the socket the other commands reach it by: it has no
// --socket of its own shadowing the root's (with its INFERGATE_SOCKET
// default), and the root's flag reaches it.
func TestAgentSocketIsTheCLIsSocket(t *testing.T) {
	root := newRootCmd()
	agentCmd, _, err := root.Find([]string{"agent"})
	if err != nil {
		t.Fatal(err)
	}
	if f := agentCmd.LocalNonPersistentFlags().Lookup("socket"); f != nil {
		t.Fatal("the agent command defines its own --socket, shadowing the CLI's")
	}
	if err := agentCmd.ParseFlags([]string{"--socket", "/tmp/x.sock"}); err != nil {
		t.Fatal(err)
	}
	if f := agentCmd.Flag("socket"); f == nil || f.Value.String() != "/tmp/x.sock" {
		t.Fatalf("agent --socket: %v", f)
	}
}
