package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/internal/syncbuf"
)

// ociArchive is an OCI image layout read from a tar archive.
type ociArchive map[string][]byte

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type ociManifest struct {
	Config descriptor   `json:"config"`
	Layers []descriptor `json:"layers"`
}

type ociConfig struct {
	Config struct {
		Entrypoint []string          `json:"Entrypoint"`
		Env        []string          `json:"Env"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

func readArchive(t *testing.T, path string) ociArchive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := ociArchive{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Clean(h.Name)] = b
		}
	}
}

// blob returns the blob d names, after checking its content hashes to d's
// digest and has d's size.
func (a ociArchive) blob(t *testing.T, d descriptor) []byte {
	t.Helper()
	hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", d.Digest)
	}
	b, ok := a["blobs/sha256/"+hexd]
	if !ok {
		t.Fatalf("no blob %s in the archive", d.Digest)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != hexd || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content hashes to %x (%d bytes), want %s (%d bytes)", d.Digest, sum, len(b), hexd, d.Size)
	}
	return b
}

// unpack extracts a gzip-compressed layer into root (the image has one
// layer and no whiteouts; anything but files, directories and symlinks is
// refused).
func unpack(t *testing.T, layer []byte, root string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean("/" + h.Name)
		if strings.HasPrefix(filepath.Base(name), ".wh.") {
			t.Fatalf("layer entry %s: a whiteout in a from-scratch image", name)
		}
		p := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)&os.ModePerm|os.FileMode(h.Mode)&os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			_ = os.Chmod(p, os.FileMode(h.Mode&0o777))
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("layer entry %s: type %c not expected in this image", name, h.Typeflag)
		}
	}
}

// TestImageBuildsAndStarts builds the image with scripts/image.sh (no base
// image, nothing pulled), pins it into a copy of deploy/, and then:
//   - the digest pinned in the rendered DaemonSets is the archive's
//     manifest digest, and every blob hashes to its descriptor;
//   - the image's entrypoint runs in a chroot of its unpacked layer
//     (`version`): the binary and the libraries ldd named are enough;
//   - the agent started from the image in private mount and network
//     namespaces, with only the capabilities the DaemonSet adds (plus
//     SYS_CHROOT for the chroot itself), after the DaemonSet's init
//     container run from the image with SYS_ADMIN mounted bpffs, loads its
//     XDP objects, pins them there and answers the DaemonSet's probe
//     command run in the image;
//   - without CAP_BPF it fails, so the capability limit is real.
func TestImageBuildsAndStarts(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "buildah", "unshare", "setpriv", "ip", "ldd", "go")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "infergate")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=imagetest -X main.commit=imagetest", "-o", bin, "./cmd/infergate")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Log("built the binary")
	deployCopy := filepath.Join(work, "deploy")
	if err := os.CopyFS(deployCopy, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "image")
	const name = "registry.example/infergate"
	img := exec.Command(filepath.Join(repo, "scripts", "image.sh"))
	img.Env = append(os.Environ(), "INFERGATE_BIN="+bin, "IMAGE_OUT="+out, "IMAGE_NAME="+name,
		"IMAGE_KUSTOMIZATION="+filepath.Join(deployCopy, "kustomization.yaml"))
	if b, err := img.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, b)
	}

	t.Log("built the image")
	a := readArchive(t, filepath.Join(out, "infergate.oci.tar"))
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(a["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests, want 1", err, len(index.Manifests))
	}
	digest := index.Manifests[0].Digest
	var m ociManifest
	if err := json.Unmarshal(a.blob(t, index.Manifests[0]), &m); err != nil {
		t.Fatal(err)
	}
	var cfg ociConfig
	if err := json.Unmarshal(a.blob(t, m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if wrote, _ := os.ReadFile(filepath.Join(out, "digest")); strings.TrimSpace(string(wrote)) != digest {
		t.Errorf("image.sh's digest file says %q, the archive %s", wrote, digest)
	}
	objs, err := render(deployCopy)
	if err != nil {
		t.Fatal(err)
	}
	dss := daemonSets(t, objs)
	for role, ds := range dss {
		if got, want := ds.Spec.Template.Spec.Containers[0].Image, name+"@"+digest; got != want {
			t.Errorf("%s DaemonSet image %s, want the built image %s", role, got, want)
		}
	}

	root := filepath.Join(work, "rootfs")
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	unpack(t, a.blob(t, m.Layers[0]), root)
	ep := cfg.Config.Entrypoint
	if len(ep) != 1 {
		t.Fatalf("entrypoint %v, want the binary alone", ep)
	}
	ver := exec.Command(ep[0], "version")
	ver.Env = cfg.Config.Env
	ver.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	ver.Dir = "/"
	if b, err := ver.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "infergate imagetest ") {
		t.Fatalf("%s version in the image: %v: %q", ep[0], err, b)
	}
	if cfg.Config.Labels["org.opencontainers.image.version"] != "imagetest" {
		t.Errorf("image labels %v: want org.opencontainers.image.version=imagetest", cfg.Config.Labels)
	}

	caps := dss["balancer"].Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add
	var bounding []string
	for _, c := range caps {
		bounding = append(bounding, "+"+strings.ToLower(string(c)))
	}
	probe := dss["balancer"].Spec.Template.Spec.Containers[0].ReadinessProbe.Exec.Command
	// The init container, run from the image with SYS_ADMIN, mounts the
	// bpffs the agent (without SYS_ADMIN) then pins on.
	initArgs := append([]string{ep[0]}, dss["balancer"].Spec.Template.Spec.InitContainers[0].Args...)

	t.Run("without CAP_BPF", func(t *testing.T) {
		var less []string
		for _, c := range bounding {
			if c != "+bpf" {
				less = append(less, c)
			}
		}
		agent, logs := startAgent(t, root, ep[0], cfg.Config.Env, less, nil)
		done := make(chan error, 1)
		go func() { done <- agent.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(logs.String(), "operation not permitted") {
				t.Fatalf("agent without CAP_BPF: exit %v, log:\n%s\nwant a refusal (operation not permitted)", err, logs)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("agent without CAP_BPF still running after a minute; log:\n%s", logs)
		}
	})

	t.Run("with the DaemonSet's capabilities", func(t *testing.T) {
		agent, logs := startAgent(t, root, ep[0], cfg.Config.Env, bounding, initArgs)
		done := make(chan error, 1)
		go func() { done <- agent.Wait() }()
		t.Cleanup(func() {
			_ = agent.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = agent.Process.Kill()
			}
		})
		deadline := time.Now().Add(90 * time.Second)
		for {
			select {
			case err := <-done:
				t.Fatalf("agent exited: %v; log:\n%s", err, logs)
			default:
			}
			st := imageCommand(t, root, cfg.Config.Env, probe)
			b, err := st.CombinedOutput()
			if err == nil {
				if !strings.Contains(string(b), "Role:") || !strings.Contains(string(b), "balancer") {
					t.Fatalf("probe %v answered %q, want the agent's status", probe, b)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("probe %v in the image did not succeed in 90 s: %v %s; agent log:\n%s", probe, err, b, logs)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), "mounted bpffs at /sys/fs/bpf") {
			t.Errorf("the init container did not mount bpffs:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "agent ready") {
			t.Errorf("the probe answered but the agent never logged ready:\n%s", logs)
		}
	})
}

// startAgent runs the image's agent (balancer role, default map sizes) in
// new mount and network namespaces, chrooted into root, with the bounding
// capability set limited to caps (setpriv syntax, "+bpf") plus sys_chroot,
// as a container runtime would set it. The host's /sys is bound in (the
// kernel's BTF) without its submounts, so /sys/fs/bpf is an empty
// directory; init, when given, runs first in the image with SYS_ADMIN (the
// init container), else a fresh bpffs is mounted there as a node's host
// would have it; all of it goes with the namespace.
func startAgent(t *testing.T, root, entry string, env, caps, init []string) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	script := `set -e
R=$1; shift
mount --bind /sys "$R/sys"
if [ -n "$INIT" ]; then
	setpriv --bounding-set=-all,+sys_admin,+sys_chroot --inh-caps=-all chroot "$R" $INIT
else
	mount -t bpf bpf "$R/sys/fs/bpf"
fi
mount -t proc proc "$R/proc"
ip link set lo up
exec setpriv --bounding-set=-all,"$BOUNDING",+sys_chroot --inh-caps=-all chroot "$R" "$@"`
	cmd := exec.Command("unshare", "--mount", "--net", "--fork", "--kill-child", "--propagation", "private",
		"sh", "-c", script, "sh", root, entry, "agent", "--role=balancer", "--state-dir=/var/lib/infergate",
		"--socket=/run/infergate/agent.sock", "--metrics-addr=")
	cmd.Env = append(env, "BOUNDING="+strings.Join(caps, ","), "INIT="+strings.Join(init, " "), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, logs
}

// imageCommand is argv run in the image as a container runtime would: the
// first word looked up on the image's PATH, inside a chroot of root.
func imageCommand(t *testing.T, root string, env, argv []string) *exec.Cmd {
	t.Helper()
	path := argv[0]
	if !strings.HasPrefix(path, "/") {
		for _, e := range env {
			if dirs, ok := strings.CutPrefix(e, "PATH="); ok {
				for _, d := range strings.Split(dirs, ":") {
					if st, err := os.Stat(filepath.Join(root, d, path)); err == nil && st.Mode()&0o111 != 0 {
						path = filepath.Join(d, path)
						break
					}
				}
			}
		}
	}
	if !strings.HasPrefix(path, "/") {
		t.Fatalf("%s is not on the image's PATH (%v)", argv[0], env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	return cmd
}
