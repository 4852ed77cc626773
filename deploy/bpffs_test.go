package deploy

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// hasSysAdmin reports whether a container gets CAP_SYS_ADMIN: privileged
// (every capability) or added by name.
func hasSysAdmin(c corev1.Container) bool {
	sc := c.SecurityContext
	if sc == nil {
		return false
	}
	if sc.Privileged != nil && *sc.Privileged {
		return true
	}
	return sc.Capabilities != nil && slices.Contains(sc.Capabilities.Add, "SYS_ADMIN")
}

// TestOnlyTheInitContainerMountsBPFFS: in each DaemonSet the init
// container mount-bpffs, from the agent's image, is the one container with
// SYS_ADMIN; it mounts bpffs on the host's /sys/fs/bpf with Bidirectional
// propagation (so the mount reaches the host), and the long-running agent
// sees that same host path (HostToContainer) with BPF, PERFMON and
// NET_ADMIN only.
func TestOnlyTheInitContainerMountsBPFFS(t *testing.T) {
	dss := daemonSets(t, renderDeploy(t))
	for _, role := range []string{"balancer", "gpu-host"} {
		ds := dss[role]
		if ds == nil {
			t.Fatalf("no DaemonSet for %s", role)
		}
		ps := ds.Spec.Template.Spec
		if len(ps.InitContainers) != 1 {
			t.Fatalf("%s: %d init containers, want mount-bpffs alone", role, len(ps.InitContainers))
		}
		init, agent := ps.InitContainers[0], ps.Containers[0]
		if !slices.Equal(init.Args, []string{"agent", "mount-bpffs", "--path=/sys/fs/bpf"}) || len(init.Command) > 0 {
			t.Errorf("%s: init container runs %v %v, want the image's entrypoint with agent mount-bpffs --path=/sys/fs/bpf", role, init.Command, init.Args)
		}
		if init.Image != agent.Image {
			t.Errorf("%s: init container image %s, want the agent's %s", role, init.Image, agent.Image)
		}
		if !hasSysAdmin(init) {
			t.Errorf("%s: the init container cannot mount (no SYS_ADMIN): %+v", role, init.SecurityContext)
		}
		for _, c := range ps.Containers {
			if hasSysAdmin(c) {
				t.Errorf("%s: container %s has SYS_ADMIN; only the init container may", role, c.Name)
			}
		}
		sc := agent.SecurityContext
		if sc == nil || sc.Capabilities == nil || !slices.Equal(slices.Sorted(slices.Values(sc.Capabilities.Add)), []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON"}) ||
			!slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: agent security context %+v, want BPF, NET_ADMIN and PERFMON only", role, sc)
		}
		hostPath := map[string]string{}
		for _, v := range ps.Volumes {
			if v.HostPath != nil {
				hostPath[v.Name] = v.HostPath.Path
			}
		}
		mount := func(c corev1.Container) *corev1.VolumeMount {
			for i, m := range c.VolumeMounts {
				if m.MountPath == "/sys/fs/bpf" {
					return &c.VolumeMounts[i]
				}
			}
			return nil
		}
		im, am := mount(init), mount(agent)
		if im == nil || hostPath[im.Name] != "/sys/fs/bpf" || im.MountPropagation == nil || *im.MountPropagation != corev1.MountPropagationBidirectional {
			t.Errorf("%s: init container's /sys/fs/bpf %+v, want the host's /sys/fs/bpf with Bidirectional propagation", role, im)
		}
		if am == nil || im == nil || am.Name != im.Name || am.MountPropagation == nil || *am.MountPropagation != corev1.MountPropagationHostToContainer {
			t.Errorf("%s: agent's /sys/fs/bpf %+v, want the init container's volume with HostToContainer propagation", role, am)
		}
	}
}
