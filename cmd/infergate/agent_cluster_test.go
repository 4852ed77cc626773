package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
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

// TestShippedDaemonSetArgs: every flag the shipped DaemonSets pass to the
// agent is one the agent command knows, with a value it accepts, so a
// renamed or removed flag fails here and not on a node.
func TestShippedDaemonSetArgs(t *testing.T) {
	for _, manifest := range []string{"../../deploy/agent-balancer.yaml", "../../deploy/agent-gpu-host.yaml"} {
		b, err := os.ReadFile(manifest)
		if err != nil {
			t.Fatal(err)
		}
		var ds struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Args []string `yaml:"args"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		found := false
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for dec.Decode(&ds) == nil {
			if ds.Kind != "DaemonSet" {
				continue
			}
			found = true
			for _, c := range ds.Spec.Template.Spec.Containers {
				if len(c.Args) == 0 || c.Args[0] != "agent" {
					t.Fatalf("%s: container args %v do not start with the agent command", manifest, c.Args)
				}
				cmd := newAgentCmd()
				if err := cmd.ParseFlags(c.Args[1:]); err != nil {
					t.Errorf("%s: %v", manifest, err)
				}
				if len(cmd.Flags().Args()) != 0 {
					t.Errorf("%s: stray arguments %v", manifest, cmd.Flags().Args())
				}
			}
		}
		if !found {
			t.Fatalf("%s: no DaemonSet", manifest)
		}
	}
}
