// Package redistest runs a real redis-server for tests, on a free loopback
// port with no persistence, stopped when the test ends.
package redistest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// Server is one running redis-server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	cmd  *exec.Cmd
	once sync.Once
}

// Start runs redis-server (gated by privtest.Tools) and returns once it
// answers PING; the server is stopped in t.Cleanup.
func Start(t testing.TB) *Server {
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
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting redis-server: %v", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd}
	t.Cleanup(func() { s.Stop(); logf.Close() })
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(StartTimeout)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("redis-server on %s did not answer: %s", s.Addr, log)
		}
		time.Sleep(pollInterval)
	}
	return s
}

// Stop kills the server and waits for it to exit; safe to call more than once
// (tests use it to make the server unreachable mid-test).
func (s *Server) Stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
}
