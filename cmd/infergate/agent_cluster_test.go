package main

import (
	"strings"
	"testing"
)

// --source takes file or cluster; the cluster source needs a reachable
// configuration, and says which flag it came from. Both are usage errors,
// found before the agent touches the node.
func TestAgentSourceFlag(t *testing.T) {
	sock := t.TempDir() + "/agent.sock"
	r := runCLI(t, sock, "", "agent", "--source", "etcd")
	if r.code != exitUsage || !strings.Contains(r.stderr, `--source "etcd": want file or cluster`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, sock, "", "agent", "--source", "cluster", "--kubeconfig", t.TempDir()+"/missing", "--node-name", "n1")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--source=cluster") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
