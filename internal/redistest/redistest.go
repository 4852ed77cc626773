// Package redistest runs a real redis-server for tests, on a free loopback
// port with no persistence, stopped when the test ends. Options add a
// password, an ACL user, TLS with certificates made for the test, and the
// DEBUG command (to stall the server).
package redistest

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/infergate/infergate/internal/privtest"
)

// StartTimeout is how long Start waits for the server to answer PING; generous
// because CI machines are shared and slow to fork.
const StartTimeout = 10 * time.Second

const pollInterval = 10 * time.Millisecond

// Options configure StartWith.
type Options struct {
	// Password is the default user's password (requirepass).
	Password string
	// Users are ACL rules, one user each, as ACL SETUSER takes them
	// ("alice on >secret ~* +@all").
	Users []string
	// TLS serves TLS only (no plain port) with a certificate for 127.0.0.1
	// signed by a CA made for the test; see Server.TLS.
	TLS bool
	// ClientCerts requires TLS clients to present a certificate from that
	// CA (tls-auth-clients yes); otherwise one is optional.
	ClientCerts bool
	// Debug enables DEBUG from loopback (Server.Sleep).
	Debug bool
}

// Server is one running redis-server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// TLS holds the test's certificates when Options.TLS is set.
	TLS *Certs

	cmd   *exec.Cmd
	admin *redis.Client
	once  sync.Once
}

// Start runs redis-server (gated by privtest.Tools) and returns once it
// answers PING; the server is stopped in t.Cleanup.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith runs redis-server configured by o.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	privtest.Tools(t, "redis-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	var clientTLS *tls.Config
	if o.TLS {
		s.TLS = makeCerts(t, filepath.Join(dir, "tls"))
		auth := "optional"
		if o.ClientCerts {
			auth = "yes"
		}
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", s.TLS.serverCert, "--tls-key-file", s.TLS.serverKey,
			"--tls-ca-cert-file", s.TLS.CAFile, "--tls-auth-clients", auth)
		clientTLS = s.TLS.ClientConfig()
	} else {
		args = append(args, "--port", strconv.Itoa(port))
	}
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password)
	}
	if o.Debug {
		args = append(args, "--enable-debug-command", "local")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	s.admin = redis.NewClient(&redis.Options{Addr: s.Addr, Password: o.Password, TLSConfig: clientTLS})
	t.Cleanup(func() { s.Stop(); s.admin.Close(); logf.Close() })
	ctx := context.Background()
	deadline := time.Now().Add(StartTimeout)
	for s.admin.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("redis-server on %s did not answer: %s", s.Addr, log)
		}
		time.Sleep(pollInterval)
	}
	for _, u := range o.Users {
		rule := []any{"ACL", "SETUSER"}
		for _, f := range strings.Fields(u) {
			rule = append(rule, f)
		}
		if err := s.admin.Do(ctx, rule...).Err(); err != nil {
			t.Fatalf("ACL SETUSER %q: %v", u, err)
		}
	}
	return s
}

// Client is a client of the server as its administrator (the default
// user, over TLS when the server speaks it), closed when the test ends.
func (s *Server) Client() *redis.Client { return s.admin }

// Sleep stalls the whole server for d (DEBUG SLEEP; needs Options.Debug):
// it accepts, reads and answers nothing meanwhile, then runs what queued
// up. It returns once the server answers again.
func (s *Server) Sleep(t testing.TB, d time.Duration) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.admin.Options().Password,
		TLSConfig: s.admin.Options().TLSConfig, ReadTimeout: d + StartTimeout})
	defer c.Close()
	if err := c.Do(context.Background(), "DEBUG", "SLEEP", strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Err(); err != nil {
		t.Errorf("DEBUG SLEEP: %v", err)
	}
}

// Stop kills the server and waits for it to exit; safe to call more than once
// (tests use it to make the server unreachable mid-test).
func (s *Server) Stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
}
