package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// shippedDaemonSets are the agent's DaemonSets, one per node role.
var shippedDaemonSets = []string{"../deploy/agent-balancer.yaml", "../deploy/agent-gpu-host.yaml"}

// shippedManifest reads one of the shipped DaemonSets and returns the agent
// container's args and the content the pod sees at its --policy-file
// (the ConfigMap key mounted there).
func shippedManifest(t *testing.T, manifest string) (args []string, policyFile []byte) {
	t.Helper()
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	type mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}
	type object struct {
		Kind     string                `yaml:"kind"`
		Metadata struct{ Name string } `yaml:"metadata"`
		Data     map[string]string     `yaml:"data"`
		Spec     struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name         string   `yaml:"name"`
						Args         []string `yaml:"args"`
						VolumeMounts []mount  `yaml:"volumeMounts"`
					} `yaml:"containers"`
					Volumes []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	configMaps := map[string]map[string]string{}
	var ds *object
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o object
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", manifest, err)
		}
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = o.Data
		case "DaemonSet":
			ds = &o
		}
	}
	if ds == nil || len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("no DaemonSet with one container in %s", manifest)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	path := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--policy-file="); ok {
			path = v
		}
	}
	if path == "" {
		return c.Args, nil
	}
	for _, m := range c.VolumeMounts {
		key, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				data, ok := configMaps[v.ConfigMap.Name]
				if !ok {
					t.Fatalf("volume %s names ConfigMap %s, not in the manifest", v.Name, v.ConfigMap.Name)
				}
				return c.Args, []byte(data[key])
			}
		}
	}
	t.Fatalf("--policy-file=%s is on no ConfigMap volume", path)
	return nil, nil
}

// startAgent starts an agent over store as the pod would: with the policy
// file's content when the args name one.
func startAgent(t *testing.T, store *memStore, file []byte) *Agent {
	t.Helper()
	a, err := New(Options{Role: RoleBalancer, Version: "test", Dataplane: newFakeDataplane(), Resolver: onLinkResolver(testBackends...),
		Store: store, Gateway: &fakeGateway{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Cleanup(a.Close)
	if err := a.Start(ctx, file); err != nil {
		t.Fatal(err)
	}
	return a
}

func currentVersion(t *testing.T, a *Agent) string {
	t.Helper()
	sp, _, ok := a.Current()
	if !ok {
		return ""
	}
	return sp.Version
}

// The DaemonSet as shipped: a pod restart does not erase the operator's
// policy, an empty ConfigMap is never applied, and an edited ConfigMap is.
func TestShippedDaemonSetKeepsAppliedPolicyAcrossRestarts(t *testing.T) {
	for _, m := range shippedDaemonSets {
		t.Run(m, func(t *testing.T) { testShippedDaemonSetKeepsPolicy(t, m) })
	}
}

func testShippedDaemonSetKeepsPolicy(t *testing.T, manifest string) {
	args, file := shippedManifest(t, manifest)
	t.Logf("agent args: %v", args)
	store := newMemStore()

	// First start on a fresh node: the ConfigMap's policy seeds the store.
	a := startAgent(t, store, file)
	seeded := currentVersion(t, a)
	if file != nil && seeded == "" {
		t.Fatal("the ConfigMap's policy was not applied on a fresh node")
	}
	// The operator applies the real policy.
	res, err := a.Apply(context.Background(), policyDoc(100), false)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()

	// The pod restarts (upgrade, eviction, crash) with the same args.
	a = startAgent(t, store, file)
	if got := currentVersion(t, a); got != res.Version {
		t.Fatalf("after a restart with the shipped args the agent runs %q, want the applied %q", got, res.Version)
	}
	a.Close()

	// An empty ConfigMap key is never applied.
	a = startAgent(t, store, []byte("\n  \n"))
	if got := currentVersion(t, a); got != res.Version {
		t.Fatalf("an empty policy file replaced the applied policy: running %q", got)
	}
	a.Close()

	// An edited ConfigMap is the operator's newer word.
	edited := policyDoc(300)
	a = startAgent(t, store, edited)
	if got := currentVersion(t, a); got == res.Version || got == "" {
		t.Fatalf("an edited policy file was not applied: running %q", got)
	}
	// ... once: a later apply survives the next restart with it.
	res2, err := a.Apply(context.Background(), policyDoc(200), false)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a = startAgent(t, store, edited)
	if got := currentVersion(t, a); got != res2.Version {
		t.Fatalf("the same edited file was applied again over a later apply: running %q, want %q", got, res2.Version)
	}
}

// A policy file that does not compile keeps the stored policy running;
// with nothing stored it is refused with its errors.
func TestStartupBadPolicyFile(t *testing.T) {
	store := newMemStore()
	a := startAgent(t, store, nil)
	res, err := a.Apply(context.Background(), policyDoc(100), false)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a = startAgent(t, store, []byte("kind: Nonsense\n"))
	if got := currentVersion(t, a); got != res.Version {
		t.Fatalf("a bad policy file displaced the stored policy: running %q", got)
	}
	a.Close()
	b, err := New(Options{Role: RoleBalancer, Dataplane: newFakeDataplane(), Resolver: onLinkResolver(testBackends...),
		Store: newMemStore(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(context.Background(), []byte("kind: Nonsense\n")); err == nil {
		t.Fatal("a bad policy file on an empty store started")
	}
}
