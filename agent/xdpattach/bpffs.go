package xdpattach

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// bpffsMode keeps pins readable by root only.
const bpffsMode = 0o700

// IsBPFFS reports whether path is on a BPF filesystem.
func IsBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}

// MountBPFFS mounts a BPF filesystem at mountPoint unless one is there
// (so it is idempotent), and reports whether it mounted.
func MountBPFFS(mountPoint string) (bool, error) {
	if err := os.MkdirAll(mountPoint, bpffsMode); err != nil {
		return false, fmt.Errorf("bpffs mount point: %w", err)
	}
	ok, err := IsBPFFS(mountPoint)
	if err != nil || ok {
		return false, err
	}
	// Mounting over files would hide them; bpffs belongs on an empty
	// directory such as /sys/fs/bpf.
	if ents, err := os.ReadDir(mountPoint); err != nil || len(ents) > 0 {
		return false, fmt.Errorf("%s is not a bpffs and not an empty directory; refusing to mount bpffs over it", mountPoint)
	}
	if err := unix.Mount("bpf", mountPoint, "bpf", 0, fmt.Sprintf("mode=%o", bpffsMode)); err != nil {
		return false, fmt.Errorf("mount bpffs at %s: %w", mountPoint, err)
	}
	return true, nil
}

// EnsureBPFFS mounts a BPF filesystem at mountPoint unless one is there, and
// checks that pinDir lies on it. It reports whether it mounted.
func EnsureBPFFS(mountPoint, pinDir string) (bool, error) {
	mounted, err := MountBPFFS(mountPoint)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(mountPoint, pinDir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return mounted, fmt.Errorf("pin dir %s is not under the bpffs at %s", pinDir, mountPoint)
	}
	if err := os.MkdirAll(pinDir, bpffsMode); err != nil {
		return mounted, fmt.Errorf("pin dir: %w", err)
	}
	if ok, err := IsBPFFS(pinDir); err != nil || !ok {
		return mounted, fmt.Errorf("pin dir %s is not on a BPF filesystem", pinDir)
	}
	return mounted, nil
}
