package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var pinned = regexp.MustCompile(`^[a-z0-9./-]+@sha256:[0-9a-f]{64}$`)

func renderDeploy(t *testing.T) []object {
	t.Helper()
	objs, err := render(".")
	if err != nil {
		t.Fatalf("render deploy/: %v", err)
	}
	return objs
}

// daemonSets converts the rendered DaemonSets to typed objects, by role.
func daemonSets(t *testing.T, objs []object) map[string]*appsv1.DaemonSet {
	t.Helper()
	out := map[string]*appsv1.DaemonSet{}
	for _, o := range objs {
		if o.kind() != "DaemonSet" {
			continue
		}
		var ds appsv1.DaemonSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(jsonMap(t, o), &ds); err != nil {
			t.Fatalf("DaemonSet %s: %v", o.name(), err)
		}
		out[ds.Spec.Template.Spec.NodeSelector["infergate.dev/role"]] = &ds
	}
	return out
}

// TestKustomizationRenders: every resource renders, names are unique, and
// every container image is pinned by digest (no tag, no :latest).
func TestKustomizationRenders(t *testing.T) {
	objs := renderDeploy(t)
	seen := map[string]bool{}
	for _, o := range objs {
		id := o.kind() + "/" + o.namespace() + "/" + o.name()
		if o.kind() == "" || o.name() == "" {
			t.Errorf("an object without kind or name: %v", o)
		}
		if seen[id] {
			t.Errorf("%s rendered twice", id)
		}
		seen[id] = true
	}
	for _, want := range []string{"CustomResourceDefinition//policies.infergate.dev", "CustomResourceDefinition//vippools.infergate.dev",
		"Namespace//infergate-system", "ServiceAccount/infergate-system/infergate-agent", "ClusterRole//infergate-agent",
		"DaemonSet/infergate-system/infergate-balancer", "DaemonSet/infergate-system/infergate-gpu-host"} {
		if !seen[want] {
			t.Errorf("%s not rendered", want)
		}
	}
	dss := daemonSets(t, objs)
	for role, ds := range dss {
		for _, c := range slices.Concat(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers) {
			if !pinned.MatchString(c.Image) {
				t.Errorf("%s container %s: image %q is not pinned by digest", role, c.Name, c.Image)
			}
		}
	}
	for _, f := range yamlFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), ":latest") {
			t.Errorf("%s names a :latest image", f)
		}
	}
}

// TestRendererIsStrict: a kustomization feature the renderer does not
// implement fails instead of rendering something kubectl would not.
func TestRendererIsStrict(t *testing.T) {
	dir := t.TempDir()
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\npatches:\n  - path: p.yaml\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := render(dir); err == nil || !strings.Contains(err.Error(), "patches") {
		t.Fatalf("render of a kustomization with patches: err %v, want one naming patches", err)
	}
}

// TestDaemonSetsAsAnOperatorReadsThem: the properties the deployment
// promises, read from the rendered objects.
func TestDaemonSetsAsAnOperatorReadsThem(t *testing.T) {
	dss := daemonSets(t, renderDeploy(t))
	for _, role := range []string{"balancer", "gpu-host"} {
		ds := dss[role]
		if ds == nil {
			t.Fatalf("no DaemonSet for nodes labelled infergate.dev/role=%s", role)
		}
		ps := ds.Spec.Template.Spec
		if !ps.HostNetwork {
			t.Errorf("%s: not on the host network", role)
		}
		if ru := ds.Spec.UpdateStrategy.RollingUpdate; ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType ||
			ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 1 {
			t.Errorf("%s: update strategy %+v, want RollingUpdate with maxUnavailable 1", role, ds.Spec.UpdateStrategy)
		}
		if len(ps.Containers) != 1 {
			t.Fatalf("%s: %d containers, want the agent alone", role, len(ps.Containers))
		}
		c := ps.Containers[0]
		sc := c.SecurityContext
		if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil {
			t.Fatalf("%s: security context %+v, want unprivileged with capabilities", role, sc)
		}
		caps := slices.Sorted(slices.Values(sc.Capabilities.Add))
		if !slices.Equal(caps, []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON"}) {
			t.Errorf("%s: capabilities %v, want BPF, NET_ADMIN, PERFMON", role, caps)
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: does not drop the default capabilities", role)
		}
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--policy-file") {
				t.Errorf("%s: %s: a policy file would compete with the stored policy and the Policy object", role, a)
			}
		}
		if !slices.Contains(c.Args, "--role="+role) {
			t.Errorf("%s: args %v lack --role=%s", role, c.Args, role)
		}
		for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{"infergate", "status"}) {
				t.Errorf("%s: %s probe %+v, want exec infergate status", role, name, p)
			}
		}
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m
		}
		hostPaths := map[string]string{}
		for _, v := range ps.Volumes {
			if v.HostPath != nil {
				hostPaths[v.Name] = v.HostPath.Path
			}
		}
		for _, p := range []string{"/sys/fs/bpf", "/var/lib/infergate"} {
			m, ok := mounts[p]
			if !ok || hostPaths[m.Name] != p {
				t.Errorf("%s: %s is not the host's %s (pins and the policy store must outlive the pod)", role, p, p)
			}
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit", role)
		}
	}
	gpu := dss["gpu-host"].Spec.Template.Spec
	if !slices.ContainsFunc(gpu.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "nvidia.com/gpu" && tl.Operator == corev1.TolerationOpExists
	}) {
		t.Errorf("gpu-host: no toleration of nvidia.com/gpu taints: %+v", gpu.Tolerations)
	}
	env := map[string]string{}
	for _, e := range gpu.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["NVIDIA_VISIBLE_DEVICES"] != "all" || env["NVIDIA_DRIVER_CAPABILITIES"] != "utility" {
		t.Errorf("gpu-host: NVIDIA toolkit environment %v, want NVIDIA_VISIBLE_DEVICES=all, NVIDIA_DRIVER_CAPABILITIES=utility", env)
	}
	if slices.ContainsFunc(dss["balancer"].Spec.Template.Spec.Tolerations, func(tl corev1.Toleration) bool { return tl.Key == "nvidia.com/gpu" }) {
		t.Error("balancer: tolerates GPU nodes' taint; the balancer role belongs on the nodes labelled for it")
	}
}

func yamlFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
