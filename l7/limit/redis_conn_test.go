package limit

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/redistest"
	"github.com/infergate/infergate/policy"
)

const testPassword = "s3cret-Pa55word"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connect builds a limiter from ls with its logs captured, and checks that
// neither its error nor its logs carry the password.
func connect(t *testing.T, ls policy.LimitStore) (*Redis, error) {
	t.Helper()
	o, err := RedisOptionsFromPolicy(ls)
	if err != nil {
		return nil, err
	}
	var logs bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	o.Prefix = fmt.Sprintf("igtest:%d:", prefixSeq.Add(1))
	o.Timeout = testRedisTimeout
	l, err := NewRedisWithOptions(o)
	if l != nil {
		t.Cleanup(func() { l.Close() })
	}
	if strings.Contains(fmt.Sprint(err), testPassword) || strings.Contains(logs.String(), testPassword) {
		t.Fatalf("password leaked: error %v, logs %s", err, logs.String())
	}
	return l, err
}

// wantWorks admits and settles one limited request through l.
func wantWorks(t *testing.T, l *Redis, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("limiter: %v", err)
	}
	tk, d, err := l.Admit(ctx, Request{Tenant: "acme", TenantLimits: policy.Limits{RequestsPerMinute: 10, Concurrent: 1}})
	if err != nil || !d.Allowed || d.Reason != "" {
		t.Fatalf("admission through an authenticated connection: %+v %v", d, err)
	}
	settle(t, tk, 0, 0)
}

func wantRefused(t *testing.T, err error, why string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), why) {
		t.Fatalf("got %v, want a startup error mentioning %q", err, why)
	}
}

func TestRedisPassword(t *testing.T) {
	s := redistest.StartWith(t, redistest.Options{Password: testPassword})
	good := writeFile(t, "pw", testPassword+"\n")
	l, err := connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: good})
	wantWorks(t, l, err)

	_, err = connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: writeFile(t, "pw", "wrong\n")})
	wantRefused(t, err, "WRONGPASS")
	// Fail-open does not turn a wrong password into admitting everything.
	_, err = connect(t, policy.LimitStore{Redis: s.Addr, FailOpen: true, PasswordFile: writeFile(t, "pw", "wrong")})
	wantRefused(t, err, "WRONGPASS")
	_, err = connect(t, policy.LimitStore{Redis: s.Addr})
	wantRefused(t, err, "NOAUTH")
	_, err = connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: writeFile(t, "pw", "\n")})
	wantRefused(t, err, "is empty")
	_, err = connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: filepath.Join(t.TempDir(), "missing")})
	wantRefused(t, err, "no such file")
}

func TestRedisACLUser(t *testing.T) {
	s := redistest.StartWith(t, redistest.Options{Users: []string{
		"gateway on >" + testPassword + " ~igtest:* +@all",
		"reader on >" + testPassword + " ~igtest:* +@read +ping",
	}})
	pw := writeFile(t, "pw", testPassword)
	l, err := connect(t, policy.LimitStore{Redis: s.Addr, Username: "gateway", PasswordFile: pw})
	wantWorks(t, l, err)
	_, err = connect(t, policy.LimitStore{Redis: s.Addr, Username: "nobody", PasswordFile: pw})
	wantRefused(t, err, "WRONGPASS")
	// A user the ACL forbids scripts is found at startup, not per request.
	_, err = connect(t, policy.LimitStore{Redis: s.Addr, Username: "reader", PasswordFile: pw})
	wantRefused(t, err, "NOPERM")
}

func TestRedisTLS(t *testing.T) {
	s := redistest.StartWith(t, redistest.Options{TLS: true, ClientCerts: true, Password: testPassword})
	c := s.TLS
	pw := writeFile(t, "pw", testPassword)
	l, err := connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: pw,
		TLS: policy.RedisTLS{Enabled: true, CAFile: c.CAFile, CertFile: c.ClientCert, KeyFile: c.ClientKey}})
	wantWorks(t, l, err)

	cases := []struct {
		name string
		tls  policy.RedisTLS
		why  string
	}{
		{"unknown server CA", policy.RedisTLS{Enabled: true, CAFile: c.OtherCAFile, CertFile: c.ClientCert, KeyFile: c.ClientKey}, "certificate signed by unknown authority"},
		{"wrong server name", policy.RedisTLS{Enabled: true, CAFile: c.CAFile, CertFile: c.ClientCert, KeyFile: c.ClientKey, ServerName: "redis.example"}, "redis.example"},
		{"no client certificate", policy.RedisTLS{Enabled: true, CAFile: c.CAFile}, "refused the connection"},
		{"client certificate from another CA", policy.RedisTLS{Enabled: true, CAFile: c.CAFile, CertFile: c.OtherCert, KeyFile: c.OtherKey}, "refused the connection"},
		{"CA file without a certificate", policy.RedisTLS{Enabled: true, CAFile: pw}, "holds no PEM certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: pw, TLS: tc.tls})
			wantRefused(t, err, tc.why)
		})
	}
	t.Run("TLS to a plain server", func(t *testing.T) {
		plain := redistest.Start(t)
		_, err := connect(t, policy.LimitStore{Redis: plain.Addr, TLS: policy.RedisTLS{Enabled: true, CAFile: c.CAFile}})
		wantRefused(t, err, "speaks plain TCP")
	})
	t.Run("plain to a TLS server", func(t *testing.T) {
		_, err := connect(t, policy.LimitStore{Redis: s.Addr, PasswordFile: pw})
		wantRefused(t, err, "speaks TLS")
	})
}
