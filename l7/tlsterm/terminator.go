package tlsterm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infergate/infergate/policy"
)

// DefaultReloadInterval is how often the files are checked for a change.
const DefaultReloadInterval = 10 * time.Second

// Options tune a Terminator; the zero value is production-ready.
type Options struct {
	// ReloadInterval between checks of the files (default 10 s).
	ReloadInterval time.Duration
	// Logger receives reloads and reload failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for the certificate's own validity (default
	// time.Now). Client certificates are checked by crypto/tls.
	Now func() time.Time
}

// Terminator holds the listener's current certificate and client CAs and
// hands crypto/tls a config per handshake.
type Terminator struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // serialises loads; state is read without it
	cfg    policy.GatewayTLS
	stamps [3]fileStamp // cert, key, client CA
	state  atomic.Pointer[tls.Config]
}

// New loads t's files and returns a Terminator serving them; a file that
// is missing, malformed, expired or a key that does not match the
// certificate is an error.
func New(t policy.GatewayTLS, opts Options) (*Terminator, error) {
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = DefaultReloadInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tm := &Terminator{opts: opts, log: opts.Logger}
	if err := tm.Update(t); err != nil {
		return nil, err
	}
	return tm, nil
}

// Update switches to new settings (a policy apply), loading their files
// now; on error the previous settings stay in force.
func (tm *Terminator) Update(t policy.GatewayTLS) error {
	p, err := tm.Prepare(t)
	if err != nil {
		return err
	}
	p.Install()
	return nil
}

// Pending is settings whose files are loaded, not yet in force (Prepare).
type Pending struct {
	tm     *Terminator
	t      policy.GatewayTLS
	stamps [3]fileStamp
	config *tls.Config
}

// Prepare loads t's files without serving them, so that an apply refuses
// settings whose files do not load before it changes anything; Install
// then puts them in force.
func (tm *Terminator) Prepare(t policy.GatewayTLS) (*Pending, error) {
	p := &Pending{tm: tm, t: t}
	var err error
	for i, path := range []string{t.CertFile, t.KeyFile, t.ClientCAFile} {
		if p.stamps[i], err = stamp(path); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	if p.config, err = tm.read(t); err != nil {
		return nil, err
	}
	return p, nil
}

// Install puts prepared settings in force.
func (p *Pending) Install() {
	p.tm.mu.Lock()
	defer p.tm.mu.Unlock()
	p.install()
}

// install swaps the settings in. tm.mu is held.
func (p *Pending) install() {
	tm := p.tm
	tm.state.Store(p.config)
	tm.cfg = p.t
	tm.cfg.ClientTenants = nil // not needed here
	tm.stamps = p.stamps
}

// load reads t's files and swaps them in (a reload). tm.mu is held.
func (tm *Terminator) load(t policy.GatewayTLS) error {
	p, err := tm.Prepare(t)
	if err != nil {
		return err
	}
	p.install()
	return nil
}

// read builds the tls.Config of t's files.
func (tm *Terminator) read(t policy.GatewayTLS) (*tls.Config, error) {
	cert, err := loadKeyPair(t.CertFile, t.KeyFile, tm.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	var cas *x509.CertPool
	clientAuth := tls.NoClientCert
	switch t.ClientAuth {
	case "", policy.ClientAuthNone:
	case policy.ClientAuthOptional:
		clientAuth = tls.VerifyClientCertIfGiven
	case policy.ClientAuthRequire:
		clientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("tls: clientAuth %q is not none, optional or require", t.ClientAuth)
	}
	if clientAuth != tls.NoClientCert {
		if t.ClientCAFile == "" {
			return nil, errors.New("tls: clientAuth " + t.ClientAuth + " needs clientCAFile")
		}
		if cas, err = LoadCAFile(t.ClientCAFile); err != nil {
			return nil, fmt.Errorf("tls: client %w", err)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   clientAuth,
		ClientCAs:    cas,
	}, nil
}

// ServerConfig is the listener's tls.Config: every handshake gets the
// certificate and client CAs current at that moment. net/http's Server
// serves HTTP/2 on connections that negotiate h2.
func (tm *Terminator) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return tm.state.Load(), nil
		},
	}
}

// Certificate is the leaf being served now.
func (tm *Terminator) Certificate() *x509.Certificate {
	return tm.state.Load().Certificates[0].Leaf
}

// Reload loads the files again if any of them changed since the last load,
// and says whether it did. On error the current certificate stays.
func (tm *Terminator) Reload() (bool, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	changed := false
	for i, p := range []string{tm.cfg.CertFile, tm.cfg.KeyFile, tm.cfg.ClientCAFile} {
		s, err := stamp(p)
		if err != nil {
			return false, fmt.Errorf("tls: %w", err)
		}
		if s != tm.stamps[i] {
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	if err := tm.load(tm.cfg); err != nil {
		return false, err
	}
	return true, nil
}

// Run checks the files every ReloadInterval until ctx ends.
func (tm *Terminator) Run(ctx context.Context) {
	tick := time.NewTicker(tm.opts.ReloadInterval)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ok, err := tm.Reload()
		switch {
		case err != nil:
			// A file being replaced may be read half-written: say so once
			// per distinct failure, keep serving the old one, try again.
			if msg := err.Error(); msg != lastErr {
				tm.log.Error("TLS files changed but do not load; serving the previous certificate", "err", err)
				lastErr = msg
			}
		case ok:
			lastErr = ""
			leaf := tm.Certificate()
			tm.log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC())
		}
	}
}
