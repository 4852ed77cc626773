package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/internal/testpki"
)

// Version is the Kubernetes release the harness's API server is built from;
// scripts/kube-apiserver.sh builds the same one.
const Version = "v1.37.2"

// DefaultBinary is where scripts/kube-apiserver.sh caches the server.
const DefaultBinary = "/var/cache/infergate/kube-apiserver-" + Version

// BinaryEnv names the environment variable that overrides DefaultBinary.
const BinaryEnv = "INFERGATE_KUBE_APISERVER"

// StartTimeout is how long Start waits for etcd and then the API server to
// answer; generous because a cold API server on a shared 2-core machine
// takes several seconds to install its built-in objects.
const StartTimeout = 90 * time.Second

const pollInterval = 50 * time.Millisecond

// adminUser is the token file's only user; in system:masters, so RBAC
// allows it everything and lets it impersonate.
const adminUser = "kubetest-admin"

// Options configure StartWith.
type Options struct {
	// RBAC authorizes with the RBAC authorizer instead of AlwaysAllow.
	RBAC bool
	// ExtraArgs are appended to the API server's command line.
	ExtraArgs []string
}

// Server is one etcd and one kube-apiserver, stopped when the test ends.
type Server struct {
	// URL is the API server's https URL on 127.0.0.1.
	URL string
	// Dir holds every file of the pair; LogFile is the API server's log.
	Dir, LogFile string

	cfg   *rest.Config
	args  []string
	bin   string
	etcd  *exec.Cmd
	etcdD <-chan struct{}
	mu    sync.Mutex
	api   *exec.Cmd
	apiDn <-chan struct{}
}

// Binary returns the kube-apiserver to run: $INFERGATE_KUBE_APISERVER, else
// DefaultBinary; and why it cannot be used, if it cannot.
func Binary() (string, error) {
	p := os.Getenv(BinaryEnv)
	if p == "" {
		p = DefaultBinary
	}
	st, err := os.Stat(p)
	if err != nil {
		return p, fmt.Errorf("no kube-apiserver at %s (build it: scripts/kube-apiserver.sh, or set %s): %w", p, BinaryEnv, err)
	}
	if st.Mode()&0o111 == 0 {
		return p, fmt.Errorf("%s is not executable", p)
	}
	return p, nil
}

// Start runs etcd and an API server authorizing everything.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith runs etcd and an API server configured by o, and returns once
// the server's /readyz answers ok.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		privtest.Skip(t, "%v", err)
	}
	privtest.Tools(t, "etcd")
	dir := t.TempDir()
	s := &Server{Dir: dir, LogFile: filepath.Join(dir, "kube-apiserver.log"), bin: bin}
	t.Cleanup(s.Stop)

	etcdURL := s.startEtcd(t)

	ca := testpki.NewCA(t, "kubetest")
	certFile, keyFile := ca.Localhost(t).Write(t, dir, "serving")
	saPub, saKey := writeServiceAccountKeys(t, dir)
	token := randomToken(t)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "%s,%s,%s,\"system:masters\"\n", token, adminUser, adminUser), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	authz := "AlwaysAllow"
	if o.RBAC {
		authz = "RBAC"
	}
	s.args = append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + tokens,
		"--authorization-mode=" + authz,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		// Allocation ranges only: no packet is ever sent to them.
		"--service-cluster-ip-range=10.96.0.0/16",
		// The kubernetes Service's endpoints would name this loopback
		// address, which the server refuses to publish.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		// Fairness queues only slow a one-client test server down.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}, o.ExtraArgs...)
	s.URL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.cfg = &rest.Config{
		Host:            s.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.PEM},
		// Tests create objects in bursts; client-side throttling would
		// only hide the server's own pace.
		QPS:   500,
		Burst: 1000,
	}
	if err := s.startAPI(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Config returns a copy of the administrator's client configuration.
func (s *Server) Config() *rest.Config { return rest.CopyConfig(s.cfg) }

// As returns a client configuration that acts as user in groups, by
// impersonation. With Options.RBAC, that is how a test checks what a
// ServiceAccount's roles allow; see ServiceAccount.
func (s *Server) As(user string, groups ...string) *rest.Config {
	c := s.Config()
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return c
}

// ServiceAccount returns a client configuration that acts as the
// ServiceAccount namespace/name, with the groups the server gives one.
func (s *Server) ServiceAccount(namespace, name string) *rest.Config {
	return s.As("system:serviceaccount:"+namespace+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+namespace, "system:authenticated")
}

// StopAPIServer stops the API server (SIGTERM, then SIGKILL after 10 s) and
// leaves etcd running: clients see the server away until StartAPIServer.
func (s *Server) StopAPIServer() {
	s.mu.Lock()
	api, done := s.api, s.apiDn
	s.api = nil
	s.mu.Unlock()
	if api == nil {
		return
	}
	_ = api.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = api.Process.Kill()
		<-done
	}
}

// StartAPIServer starts the API server again on the same port, with the
// same files and store, and returns once it is ready.
func (s *Server) StartAPIServer(t testing.TB) {
	t.Helper()
	if err := s.startAPI(); err != nil {
		t.Fatal(err)
	}
}

// Restart stops and starts the API server; etcd and everything stored stay.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.StopAPIServer()
	s.StartAPIServer(t)
}

// Stop stops the API server and etcd; safe to call more than once.
func (s *Server) Stop() {
	s.StopAPIServer()
	if s.etcd != nil && s.etcd.Process != nil {
		_ = s.etcd.Process.Kill()
		<-s.etcdD
		s.etcd = nil
	}
}

func (s *Server) startAPI() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.api != nil {
		return errors.New("kube-apiserver is already running")
	}
	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with the test binary rather than left holding the port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done, err := startPinned(cmd)
	if err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	go func() { <-done; logf.Close() }()
	s.api, s.apiDn = cmd, done
	if err := s.waitReady(done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		s.api = nil
		return fmt.Errorf("%w; the end of its log:\n%s", err, tail(s.LogFile, 4000))
	}
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits or
// StartTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	tr, err := rest.TransportFor(s.cfg)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(StartTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("kube-apiserver exited while starting")
		default:
		}
		resp, err := c.Get(s.URL + "/readyz")
		if err == nil {
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b[:n]))
		} else {
			last = err.Error()
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("kube-apiserver at %s not ready after %v (last: %s)", s.URL, StartTimeout, last)
}

// startEtcd runs a one-member etcd on two free loopback ports and returns
// its client URL once it answers its health endpoint.
func (s *Server) startEtcd(t testing.TB) string {
	t.Helper()
	client := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	logPath := filepath.Join(s.Dir, "etcd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("etcd",
		"--name=kubetest",
		"--data-dir="+filepath.Join(s.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=kubetest="+peer,
		"--log-level=warn", "--logger=zap")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done, err := startPinned(cmd)
	if err != nil {
		logf.Close()
		t.Fatalf("starting etcd: %v", err)
	}
	s.etcd, s.etcdD = cmd, done
	t.Cleanup(func() { logf.Close() })
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(StartTimeout)
	for {
		resp, err := c.Get(client + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return client
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd on %s did not answer /health: %v; log:\n%s", client, err, tail(logPath, 4000))
		}
		time.Sleep(pollInterval)
	}
}

// startPinned starts cmd from an OS thread of its own, kept until the
// child exits, and returns a channel closed once it has been waited for.
// Pdeathsig fires when the *thread* that forked the child ends, not the
// process: forked from an ordinary thread, the child is killed whenever
// the Go runtime ends that thread, which it does when any goroutine that
// locked it (a test entering a network namespace) returns locked.
func startPinned(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the
		// child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// writeServiceAccountKeys writes an ECDSA P-256 key pair (ES256 tokens) as
// dir/sa.pub and dir/sa.key and returns their paths.
func writeServiceAccountKeys(t testing.TB, dir string) (pub, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pder, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, key = filepath.Join(dir, "sa.pub"), filepath.Join(dir, "sa.key")
	testpki.WriteFile(t, key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	testpki.WriteFile(t, pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}))
	return pub, key
}

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; on this loopback-only harness that
// race shows as a start failure naming the port, not as a wrong result.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tail returns up to the last n bytes of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Ready reports whether the API server answers /readyz with 200 now.
func (s *Server) Ready(ctx context.Context) bool {
	tr, err := rest.TransportFor(s.cfg)
	if err != nil {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
