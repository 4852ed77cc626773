package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/agent/xdpattach"
	"github.com/infergate/infergate/internal/privtest"
)

// mountBPFFSChildEnv names the scratch directory when this test binary runs
// as the child of TestAgentMountBPFFS, inside its own mount namespace.
const mountBPFFSChildEnv = "INFERGATE_TEST_MOUNT_BPFFS_DIR"

// TestAgentMountBPFFS runs `infergate agent mount-bpffs` as root in a fresh
// mount namespace (unshare), on a tmpfs of its own so nothing reaches the
// host's mounts: it mounts bpffs where there is none, and the mount
// reaches a shared peer of the directory (as the init container's mount
// reaches the host through Bidirectional propagation); run again it is a
// no-op (one bpffs, not two stacked); over a directory holding files it
// refuses.
func TestAgentMountBPFFS(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "unshare")
	dir := t.TempDir()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run=^TestAgentMountBPFFSChild$", "-test.v")
	cmd.Env = append(os.Environ(), mountBPFFSChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAgentMountBPFFSChild") {
		t.Fatalf("the child in its mount namespace: %v\n%s", err, out)
	}
	// The namespace went with the child: nothing was left mounted here.
	if ok, err := xdpattach.IsBPFFS(dir); err != nil || ok {
		t.Fatalf("bpffs at %s outside the child's namespace (err %v)", dir, err)
	}
}

// TestAgentMountBPFFSChild is TestAgentMountBPFFS's child; run by itself
// (no scratch directory named) it has nothing to do.
func TestAgentMountBPFFSChild(t *testing.T) {
	dir := os.Getenv(mountBPFFSChildEnv)
	if dir == "" {
		return
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	host, node := filepath.Join(dir, "host"), filepath.Join(dir, "pod")
	for _, d := range []string{host, node} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// host stands for the node's directory, pod for the container's view
	// of it: peers in one shared group, as a Bidirectional hostPath is.
	if err := unix.Mount(host, host, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Mount("", host, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make shared: %v", err)
	}
	if err := unix.Mount(host, node, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind: %v", err)
	}
	bpf := filepath.Join(node, "bpf")
	if err := os.Mkdir(bpf, 0o755); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "/nonexistent.sock", "", "agent", "mount-bpffs", "--path", bpf)
	if r.code != exitOK || r.stdout != "mounted bpffs at "+bpf+"\n" {
		t.Fatalf("first run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, p := range []string{bpf, filepath.Join(host, "bpf")} {
		if ok, err := xdpattach.IsBPFFS(p); err != nil || !ok {
			t.Fatalf("%s is not a bpffs after the first run (err %v)", p, err)
		}
	}

	r = runCLI(t, "/nonexistent.sock", "", "agent", "mount-bpffs", "--path", bpf)
	if r.code != exitOK || r.stdout != "bpffs already mounted at "+bpf+"\n" {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := mountsAt(t, bpf); n != 1 {
		t.Fatalf("%d mounts at %s after two runs, want 1", n, bpf)
	}

	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "/nonexistent.sock", "", "agent", "mount-bpffs", "--path", full)
	if r.code == exitOK || !strings.Contains(r.stderr, "refusing to mount bpffs over it") {
		t.Fatalf("over a directory with files: exit %d, stderr %q, want a refusal", r.code, r.stderr)
	}
	if n := mountsAt(t, full); n != 0 {
		t.Fatalf("%d mounts at %s, want none", n, full)
	}
}

// mountsAt counts the mounts whose mount point is p.
func mountsAt(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			n++
		}
	}
	return n
}
