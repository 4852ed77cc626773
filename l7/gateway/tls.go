package gateway

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/infergate/infergate/l7/h1"
)

// TLSServer serves the gateway's handler on a TLS listener with net/http:
// connections that negotiate h2 by ALPN get HTTP/2, the others HTTP/1.1,
// both through the same handler and stages. (l7/h1 stays the server of
// plain listeners; it speaks HTTP/1.1 only.)
type TLSServer struct {
	*http.Server
	err atomic.Pointer[error]
}

// Err is why Serve stopped, other than by Shutdown or Close (nil while it
// serves).
func (s *TLSServer) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// NewTLSServer wraps h in a TLS server with NewServer's timeouts and
// limits. tc must carry the certificate (l7/tlsterm's ServerConfig).
// Failed handshakes (scanners, expired or unknown client certificates) are
// logged at debug level only: they are the client's problem and would
// otherwise let anyone fill the log.
func NewTLSServer(h http.Handler, tc *tls.Config, log *slog.Logger) *TLSServer {
	if log == nil {
		log = slog.Default()
	}
	s := NewServer("", h)
	s.TLSConfig = tc
	s.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return &TLSServer{Server: s}
}

// Serve accepts TLS connections on ln (a plain TCP listener).
func (s *TLSServer) Serve(ln net.Listener) error {
	if s.TLSConfig == nil {
		return errors.New("gateway: TLS server without a TLS config")
	}
	// The same connection caps as the plain listener's (l7/h1): one
	// client cannot hold every descriptor with idle handshakes.
	err := s.Server.ServeTLS(h1.LimitListener(ln, 0, 0), "", "")
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.err.Store(&err)
	}
	return err
}
