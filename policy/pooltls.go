package policy

import (
	"path/filepath"
	"strings"
)

// PoolTLS makes the gateway speak HTTPS to a pool's backends, verified
// against CAFile (or the system roots). Present turns it on.
type PoolTLS struct {
	// CAFile verifies the backends' certificates instead of the system
	// roots.
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	// ServerName is the name checked in every backend's certificate
	// (default: the backend's address, which its certificate must then
	// carry as an IP SAN).
	ServerName string `yaml:"serverName,omitempty" json:"serverName,omitempty"`
}

// clone copies t (nil stays nil).
func (t *PoolTLS) clone() *PoolTLS {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// poolTLS checks a pool's TLS settings.
func (v *validator) poolTLS(p string, t *PoolTLS) {
	if t == nil {
		return
	}
	if t.CAFile != "" && !filepath.IsAbs(t.CAFile) {
		v.add(p+".caFile", "%q must be an absolute path", t.CAFile)
	}
	if t.ServerName != "" && (len(t.ServerName) > 253 || strings.IndexFunc(t.ServerName, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '/' || r == ':' }) >= 0) {
		v.add(p+".serverName", "%q is not a host name", truncate(t.ServerName, 80))
	}
}
