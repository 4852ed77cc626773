package policy

import (
	"path/filepath"
	"strings"
)

// MaxRedisUsername bounds limitStore.username.
const MaxRedisUsername = 256

// limitStore checks the Redis credentials and TLS files: they need a Redis
// address, paths are absolute, a user needs a password, a client
// certificate needs its key, and TLS files need tls.enabled.
func (v *validator) limitStore(p string, ls LimitStore) {
	t := ls.TLS
	if ls.Redis == "" {
		if ls.Username != "" || ls.PasswordFile != "" || t != (RedisTLS{}) {
			v.add(p, "username, passwordFile and tls apply only with redis")
		}
		return
	}
	if ls.Username != "" {
		switch {
		case len(ls.Username) > MaxRedisUsername:
			v.add(p+".username", "is longer than %d characters", MaxRedisUsername)
		case strings.IndexFunc(ls.Username, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
			v.add(p+".username", "%q has spaces or control characters", ls.Username)
		}
		if ls.PasswordFile == "" {
			v.add(p+".username", "needs passwordFile")
		}
	}
	files := []struct{ name, path string }{
		{".passwordFile", ls.PasswordFile}, {".tls.caFile", t.CAFile}, {".tls.certFile", t.CertFile}, {".tls.keyFile", t.KeyFile},
	}
	for _, f := range files {
		if f.path != "" && !filepath.IsAbs(f.path) {
			v.add(p+f.name, "%q must be an absolute path", f.path)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add(p+".tls", "certFile and keyFile go together")
	}
	if !t.Enabled && t != (RedisTLS{}) {
		v.add(p+".tls", "has settings but enabled is false")
	}
	if t.ServerName != "" && (len(t.ServerName) > 253 || strings.IndexFunc(t.ServerName, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '/' }) >= 0) {
		v.add(p+".tls.serverName", "%q is not a host name", t.ServerName)
	}
}
