package limit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/infergate/infergate/policy"
)

// maxSecretFile bounds the password file: a password, not a document.
const maxSecretFile = 4 << 10

// NewRedisFromPolicy returns the limiter a policy's limitStore names,
// reading its password file and TLS files. Every file is read here, once;
// a missing, empty or unparsable one is an error.
func NewRedisFromPolicy(ls policy.LimitStore) (*Redis, error) {
	o, err := RedisOptionsFromPolicy(ls)
	if err != nil {
		return nil, err
	}
	return NewRedisWithOptions(o)
}

// RedisOptionsFromPolicy reads the files a limitStore names into options.
func RedisOptionsFromPolicy(ls policy.LimitStore) (RedisOptions, error) {
	o := RedisOptions{Addr: ls.Redis, FailOpen: ls.FailOpen, Username: ls.Username}
	if ls.PasswordFile != "" {
		pw, err := readPassword(ls.PasswordFile)
		if err != nil {
			return RedisOptions{}, err
		}
		o.Password = pw
	}
	if ls.TLS.Enabled {
		cfg, err := redisTLS(ls.Redis, ls.TLS)
		if err != nil {
			return RedisOptions{}, err
		}
		o.TLS = cfg
	}
	return o, nil
}

// readPassword reads a password file: its first line, without the line
// break. The error never quotes the file's content.
func readPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("limit: redis password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("limit: redis password file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("limit: redis password file %s is larger than %d bytes", path, maxSecretFile)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", fmt.Errorf("limit: redis password file %s is empty", path)
	}
	return string(line), nil
}

// redisTLS builds the client TLS configuration: TLS 1.2 or later, the CA
// file's roots (else the system's), an optional client certificate, and
// the server name from the policy or the address's host.
func redisTLS(addr string, t policy.RedisTLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("limit: redis address %q: %w", addr, err)
		}
		cfg.ServerName = host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("limit: redis tls caFile: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("limit: redis tls caFile %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("limit: redis tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// check asks the server once at construction. Unreachable is fine (the
// limiter fails open or closed until it answers), but a server that
// answers and refuses us (a wrong password, an unknown user, a command the
// ACL forbids, a certificate either side does not accept, TLS spoken to a
// plain port) is a configuration error, reported now rather than as a
// fail-open on every request.
func (r *Redis) check(o RedisOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.timeout)
	defer cancel()
	err := r.client.Ping(ctx).Err()
	if err == nil {
		// The scripts need EVALSHA: an ACL that forbids it is found here.
		err = r.renew.Load(ctx, r.client).Err()
	}
	if err == nil {
		return nil
	}
	if refusedUs(err) {
		return fmt.Errorf("limit: redis at %s refused the connection (check limitStore username, passwordFile and tls): %w", o.Addr, err)
	}
	// The probe gets its own time: the ping may have used all of ctx.
	pctx, pcancel := context.WithTimeout(context.Background(), r.timeout)
	defer pcancel()
	if perr := probeProtocol(pctx, o.Addr, o.TLS != nil); perr != nil {
		return fmt.Errorf("limit: redis at %s: %w (%w)", o.Addr, perr, err)
	}
	r.log.Warn("limit store not reachable yet", "addr", o.Addr, "err", err, "failOpen", r.failOpen)
	return nil
}

// probeProtocol tells a server that speaks the other protocol from one
// that is down or stalled, which fail the same way otherwise (a plain
// server waits forever for the end of a TLS hello; a TLS server hangs up
// on plain text). It returns an error only when the other protocol works.
func probeProtocol(ctx context.Context, addr string, wantTLS bool) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil // down: an outage, not a misconfiguration
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if wantTLS {
		if _, err := conn.Write([]byte("PING\r\n")); err != nil {
			return nil
		}
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err == nil && (b[0] == '+' || b[0] == '-') {
			return errors.New("the server speaks plain TCP, but limitStore.tls is enabled")
		}
		return nil
	}
	// Only whether a TLS server answers; nothing is sent past the handshake.
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // a probe, no data sent
	if tc.HandshakeContext(ctx) == nil {
		return errors.New("the server speaks TLS: enable limitStore.tls")
	}
	return nil
}

// refusedUs reports errors that mean a misconfiguration rather than an
// outage.
func refusedUs(err error) bool {
	var (
		rerr     redis.Error
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		record   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &rerr) {
		// Not LOADING, BUSY and the like: a server that is starting or
		// busy is an outage that passes.
		for _, p := range []string{"NOAUTH", "WRONGPASS", "NOPERM", "ERR"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	// A TLS alert from the server (our certificate refused) arrives as a
	// net.OpError whose Op is "remote error".
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	return errors.As(err, &verify) || errors.As(err, &alert) ||
		errors.As(err, &record) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
