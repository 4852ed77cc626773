package xdpattach

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/agent/internal/vethtest"
	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/loader"
)

// testMapSize keeps the real maps small so tests load fast.
const testMapSize = 4096

func testLoaderConfig() loader.Config {
	return loader.Config{MaxFlows: testMapSize, MaxBuckets: testMapSize, MaxEstablishedClients: testMapSize,
		MaxVIPs: 16, MaxBackends: 64, MaxRules: 64, MaxClassPrefixes: 64}
}

// testBPFFS mounts a private BPF filesystem on a temp dir for one test,
// checking EnsureBPFFS on the way: it mounts once, refuses a pin dir off the
// bpffs and a non-empty mount point.
func testBPFFS(t *testing.T) (mount, pinDir string) {
	t.Helper()
	privtest.Root(t)
	mount = t.TempDir()
	pinDir = filepath.Join(mount, "infergate")
	mounted, err := EnsureBPFFS(mount, pinDir)
	if err != nil {
		t.Fatal(err)
	}
	if !mounted {
		t.Fatal("a fresh temp dir was already a bpffs")
	}
	t.Cleanup(func() { _ = unix.Unmount(mount, unix.MNT_DETACH) })
	if again, err := EnsureBPFFS(mount, pinDir); err != nil || again {
		t.Fatalf("second EnsureBPFFS mounted again (%v) or failed: %v", again, err)
	}
	if _, err := EnsureBPFFS(mount, t.TempDir()); err == nil {
		t.Fatal("pin dir outside the bpffs accepted")
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep"), nil, 0o600)
	if _, err := EnsureBPFFS(full, filepath.Join(full, "pins")); err == nil {
		t.Fatal("bpffs mounted over a directory with files in it")
	}
	return mount, pinDir
}

func TestEnsureBPFFS(t *testing.T) {
	_, pinDir := testBPFFS(t)
	if ok, err := IsBPFFS(pinDir); err != nil || !ok {
		t.Fatalf("pin dir %s on a bpffs: %v, %v", pinDir, ok, err)
	}
}

func loadPinned(t *testing.T, pinDir string) *loader.Balancer {
	t.Helper()
	b, err := loader.LoadBalancer(testLoaderConfig(), pinDir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttachPinAdopt attaches the real balancer to a veth, lets the agent
// "exit", adopts the pinned link from a second instance (program replaced,
// never detached), re-attaches after the interface is re-created, and
// uninstalls.
func TestAttachPinAdopt(t *testing.T) {
	_, pinDir := testBPFFS(t)
	v := vethtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := loadPinned(t, pinDir)
	x := NewAttacher(b.Program(), "balancer", pinDir, false, log)
	if _, err := x.Attach([]string{v.Near}, "native"); err != nil {
		t.Fatal(err)
	}
	st := x.Status()
	if len(st) != 1 || !st[0].Attached || st[0].Mode != "native" || st[0].Program != "balancer" {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(pinDir, LinkPinPrefix+v.Near)); err != nil {
		t.Fatalf("link not pinned: %v", err)
	}
	idx, _ := LinkIndex(v.Near)

	// Exit: handles close; the program stays attached through the pin.
	x.Close()
	b.Close()
	if AttachedMode(idx) != "native" {
		t.Fatal("program detached when the agent exited")
	}

	b2 := loadPinned(t, pinDir)
	defer b2.Close()
	x2 := NewAttacher(b2.Program(), "balancer", pinDir, false, log)
	defer x2.Close()
	if _, err := x2.Attach([]string{v.Near}, "native"); err != nil {
		t.Fatal(err)
	}
	if !x2.links[v.Near].adopted {
		t.Fatal("second agent attached afresh instead of adopting the pinned link")
	}
	info, err := b2.Program().Info()
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := info.ID()
	if got := vethtest.XDPProgID(t, idx); got != uint32(wantID) {
		t.Fatalf("interface runs program %d, want the new agent's %d", got, wantID)
	}

	// The interface goes away and comes back with a new index.
	vethtest.IP(t, "link", "del", v.Near)
	vethtest.IP(t, "link", "add", v.Near, "type", "veth", "peer", "name", v.Far+"y")
	vethtest.IP(t, "link", "set", v.Near, "up")
	if err := x2.Relink(v.Near); err != nil {
		t.Fatal(err)
	}
	if st := x2.Status(); !st[0].Attached {
		t.Fatalf("not re-attached: %+v", st)
	}
	newIdx, _ := LinkIndex(v.Near)

	// A mode change re-attaches in the new mode.
	if _, err := x2.Attach([]string{v.Near}, "generic"); err != nil {
		t.Fatal(err)
	}
	if st := x2.Status(); !st[0].Attached || st[0].Mode != "generic" {
		t.Fatalf("after a switch to generic: %+v", st)
	}

	// Uninstall runs once the agent has stopped (its handles closed).
	x2.Close()
	if err := Uninstall(pinDir, log); err != nil {
		t.Fatal(err)
	}
	if m := AttachedMode(newIdx); m != "" {
		t.Fatalf("still attached (%s) after uninstall", m)
	}
}
