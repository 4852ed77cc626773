package httpserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/h1"
)

const testGrace = 2 * time.Second

// servers are the two kinds Run drives in the project.
var servers = []struct {
	name string
	make func(http.Handler) Server
}{
	{"net/http", func(h http.Handler) Server { return &http.Server{Handler: h} }},
	{"h1", func(h http.Handler) Server { return &h1.Server{Handler: h} }},
}

// TestRunShutsDownOnCancel: a request in flight when ctx ends is still
// answered, Run returns nil, and the port is closed afterwards, for both
// kinds of server.
func TestRunShutsDownOnCancel(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) { testShutdownOnCancel(t, s.make) })
	}
}

func testShutdownOnCancel(t *testing.T, mk func(http.Handler) Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, mk(h), ln, testGrace) }()
	url := "http://" + ln.Addr().String() + "/"
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-entered
	cancel()
	// Shutdown is under way: the listener is closed before in-flight
	// requests are waited for.
	time.Sleep(50 * time.Millisecond)
	close(release)
	if s := <-got; s != "done" {
		t.Fatalf("in-flight request: %q", s)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(testGrace + 5*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("port still open after Run returned")
	}
}

// TestRunReturnsServeError: a listener that fails makes Run return that
// error without waiting for ctx.
func TestRunReturnsServeError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	for _, s := range servers {
		if err := Run(context.Background(), s.make(http.NotFoundHandler()), ln, testGrace); err == nil {
			t.Fatalf("%s: Run on a closed listener returned nil", s.name)
		}
	}
}
