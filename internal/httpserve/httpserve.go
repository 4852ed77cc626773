// Package httpserve runs an HTTP server (net/http's, or the gateway's lean
// l7/h1) on a listener until a context ends, then shuts it down
// gracefully: the loop every long-running server in the project needs.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Server is what Run drives: *http.Server and *h1.Server both are. Serve
// must return http.ErrServerClosed after Shutdown.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Run serves srv on ln until ctx ends, then shuts srv down, giving requests
// in flight up to grace. It returns nil after a shutdown that finished in
// time, and the server's error if serving failed first.
func Run(ctx context.Context, srv Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
