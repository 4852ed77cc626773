package mockllm

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/infergate/infergate/internal/httpserve"
)

// Server timeouts for the commands that serve a mock (cmd/mockllm, the lab's
// GPU hosts).
const (
	ReadHeaderTimeout = 5 * time.Second
	IdleTimeout       = 90 * time.Second
	// ShutdownGrace lets in-flight (possibly slow, streamed) completions
	// finish after ctx ends.
	ShutdownGrace = 10 * time.Second
)

// Serve serves h on ln until ctx ends, then shuts down gracefully. It returns
// nil after a shutdown and the server's error otherwise.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: IdleTimeout}
	return httpserve.Run(ctx, srv, ln, ShutdownGrace)
}
