package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/infergate/infergate/l7/tlsterm"
	"github.com/infergate/infergate/policy"
)

// ListenerServer is what serves the gateway's listener: l7/h1 for plain
// HTTP, TLSServer for TLS. Serve returns http.ErrServerClosed after
// Shutdown.
type ListenerServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	// Err is why Serve stopped other than by Shutdown or Close (nil
	// while it serves): health reports a listener that stopped.
	Err() error
}

// Listener serves a gateway handler the way the policy's gateway.tls asks,
// and follows the TLS settings of later policies. Both composition roots
// (the agent's embedded gateway and "infergate gateway") use it.
type Listener struct {
	Server ListenerServer
	// TLS is nil for a plain listener.
	TLS *tlsterm.Terminator

	stop context.CancelFunc
	once sync.Once
}

// NewListener builds the server for c's listener. With gateway.tls it
// loads the certificate (an error if it does not load) and checks the
// files for changes until Close.
func NewListener(c *policy.Compiled, h http.Handler, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.Default()
	}
	if c.Gateway.TLS == nil {
		return &Listener{Server: NewListenerServer(h, log), stop: func() {}}, nil
	}
	tm, err := tlsterm.New(*c.Gateway.TLS, tlsterm.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	go tm.Run(ctx)
	return &Listener{Server: NewTLSServer(h, tm.ServerConfig(), log), TLS: tm, stop: stop}, nil
}

// ErrTLSToggle refuses a policy that turns TLS on or off: the listener
// would have to be replaced, which a restart does.
var ErrTLSToggle = errors.New("gateway.tls: turning TLS on or off needs a restart of the gateway")

// ApplyTLS switches the listener to c's TLS settings, loading their files
// now; on error nothing changed.
func (l *Listener) ApplyTLS(c *policy.Compiled) error {
	install, err := l.PrepareTLS(c)
	if err != nil {
		return err
	}
	install()
	return nil
}

// PrepareTLS loads c's TLS files without serving them and returns what
// puts them in force, so that a policy whose certificate does not load is
// refused before anything of it is applied.
func (l *Listener) PrepareTLS(c *policy.Compiled) (install func(), err error) {
	if (c.Gateway.TLS == nil) != (l.TLS == nil) {
		return nil, ErrTLSToggle
	}
	if l.TLS == nil {
		return func() {}, nil
	}
	p, err := l.TLS.Prepare(*c.Gateway.TLS)
	if err != nil {
		return nil, err
	}
	return p.Install, nil
}

// Close stops checking the TLS files (the server is shut down by its owner).
func (l *Listener) Close() { l.once.Do(l.stop) }
