// Package auth identifies the caller of an L7 gateway request: an API key
// (stored only as its SHA-256 hash) or a bearer JWT from a configured issuer.
// Either way the result is a Principal naming a tenant from the policy, which
// the gateway passes on to limits, routing, metrics and logs.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/infergate/infergate/policy"
)

// Bounds on credentials. A key is "ig-" plus 43 base64url characters; the
// bound leaves room for keys minted elsewhere. JWTs with a few custom claims
// stay far below 8 KiB; anything larger is refused before any parsing.
const (
	maxAPIKeyBytes = 256
	maxTokenBytes  = 8 << 10

	// KeyPrefix starts every key GenerateKey mints, so a leaked key is easy
	// to recognise in secret scanners.
	KeyPrefix = "ig-"
	// keyRandomBytes is the entropy of a generated key (256 bits).
	keyRandomBytes = 32
)

// Error codes; the gateway writes them in OpenAI's error shape.
const (
	CodeMissingCredentials = "missing_credentials"
	CodeInvalidAPIKey      = "invalid_api_key"
	CodeInvalidToken       = "invalid_token"
)

// Principal is who a request acts for.
type Principal struct {
	Tenant      string
	TenantIndex int // index into CompiledGateway.Tenants
	KeyName     string
	KeyIndex    int // index into CompiledGateway.Keys; -1 for a token that names no key
	Subject     string
	// Models, when not nil, are the only models a token allows (its
	// models claim).
	Models []string
}

// Error is an authentication failure. Message never contains the
// credential itself.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Failures are preallocated: the key path returns them without allocating.
var (
	errMissing      = &Error{Status: http.StatusUnauthorized, Code: CodeMissingCredentials, Message: "no API key or bearer token: send \"Authorization: Bearer <key>\" or \"x-api-key: <key>\""}
	errInvalidKey   = &Error{Status: http.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: "the API key is not valid"}
	errKeyTooLong   = &Error{Status: http.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: fmt.Sprintf("the API key is longer than %d bytes", maxAPIKeyBytes)}
	errTokenTooLong = &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Message: fmt.Sprintf("the bearer token is longer than %d bytes", maxTokenBytes)}
	errMalformed    = &Error{Status: http.StatusUnauthorized, Code: CodeMissingCredentials, Message: "the Authorization header must be \"Bearer <credential>\""}
)

func invalidToken(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Message: fmt.Sprintf(format, args...)}
}

// Options tune an Authenticator; the zero value is production-ready.
type Options struct {
	// HTTPClient fetches JWKS documents (default: a client with a 5 s timeout).
	HTTPClient *http.Client
	// Now is the clock for token expiry (default time.Now).
	Now func() time.Time
	// Getenv reads HS256 secrets named by hs256SecretEnv (default os.Getenv).
	Getenv func(string) string
	// Logger receives JWKS refresh failures (default slog.Default()).
	Logger *slog.Logger
	// JWKSMinRefresh is the least time between two fetches triggered by an
	// unknown kid (default 30 s), so forged kids cannot make us hammer the IdP.
	JWKSMinRefresh time.Duration
	// Leeway tolerates clock skew on exp/nbf/iat (default 30 s).
	Leeway time.Duration
	// Previous is the Authenticator this one replaces (a policy apply):
	// an issuer whose configuration is unchanged keeps Previous's JWKS
	// cache, keys and refresh timer, so an apply never drops the keys and
	// an identity provider that is down at that moment fails nothing.
	// Previous must have been built with the same Options otherwise.
	Previous *Authenticator
}

type keyEntry struct {
	hash   [32]byte
	index  int32
	tenant int32
}

// Authenticator checks credentials against one compiled gateway config.
// It is safe for concurrent use; build a new one when the policy changes.
type Authenticator struct {
	g       *policy.CompiledGateway
	keys    map[[32]byte]keyEntry
	tenants map[string]int
	issuers map[string]*issuer
	// certs maps client certificate identities to tenant indexes (cert.go).
	certs map[string]int
	// keyNames finds a key by tenant and name (a token's key claim).
	keyNames map[keyName]int
	// tenantGrants and keyGrants are the allow lists by index.
	tenantGrants []grant
	keyGrants    []grant
	// introspect asks issuers about opaque tokens; nil without any.
	introspect introspectors
	closed     sync.Once
}

// New indexes g's keys and loads its JWT issuers. JWKS documents are
// fetched in the background; an issuer whose IdP is down at start-up only
// fails the tokens it cannot verify yet.
func New(g *policy.CompiledGateway, opts Options) (*Authenticator, error) {
	opts = opts.withDefaults()
	a := &Authenticator{
		g:       g,
		keys:    make(map[[32]byte]keyEntry, len(g.Keys)),
		tenants: make(map[string]int, len(g.Tenants)),
		issuers: make(map[string]*issuer, len(g.JWT)),
	}
	a.keyNames = make(map[keyName]int, len(g.Keys))
	for i, t := range g.Tenants {
		a.tenants[t.Name] = i
		a.tenantGrants = append(a.tenantGrants, newGrant(t.Allow))
	}
	for i, k := range g.Keys {
		a.keyNames[keyName{tenant: k.Tenant, name: k.Name}] = i
		a.keyGrants = append(a.keyGrants, newGrant(k.Allow))
	}
	a.certs = certTenants(g, a.tenants)
	for i, k := range g.Keys {
		if k.Tenant < 0 || k.Tenant >= len(g.Tenants) {
			return nil, fmt.Errorf("auth: key %q names tenant index %d of %d", k.Name, k.Tenant, len(g.Tenants))
		}
		if prev, dup := a.keys[k.Hash]; dup {
			return nil, fmt.Errorf("auth: keys %q and %q have the same hash", g.Keys[prev.index].Name, k.Name)
		}
		a.keys[k.Hash] = keyEntry{hash: k.Hash, index: int32(i), tenant: int32(k.Tenant)}
	}
	for _, jc := range g.JWT {
		if _, dup := a.issuers[jc.Issuer]; dup {
			a.Close()
			return nil, fmt.Errorf("auth: issuer %q configured twice", jc.Issuer)
		}
		var prev *issuer
		if opts.Previous != nil {
			prev = opts.Previous.issuers[jc.Issuer]
		}
		is, err := newIssuer(jc, opts, prev)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("auth: issuer %q: %w", jc.Issuer, err)
		}
		a.issuers[jc.Issuer] = is
		if jc.Introspection != nil {
			if err := a.addIntrospection(is, opts); err != nil {
				a.Close()
				return nil, fmt.Errorf("auth: issuer %q: introspection: %w", jc.Issuer, err)
			}
		}
	}
	return a, nil
}

type keyName struct {
	tenant int
	name   string
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: jwksFetchTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Getenv == nil {
		o.Getenv = getenv
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.JWKSMinRefresh <= 0 {
		o.JWKSMinRefresh = defaultJWKSMinRefresh
	}
	if o.Leeway <= 0 {
		o.Leeway = defaultLeeway
	}
	return o
}

// Close stops background JWKS refreshes.
func (a *Authenticator) Close() error {
	a.closed.Do(func() {
		for _, is := range a.issuers {
			is.close()
		}
	})
	return nil
}

// Authenticate identifies r's caller. The error is always an *Error.
// A verified client certificate that the policy maps to a tenant comes
// first: it was proven in the handshake, so headers do not override it.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if r.TLS != nil && a.certs != nil {
		if p, ok := a.authenticateCert(r.TLS); ok {
			return p, nil
		}
	}
	if v := r.Header.Get("Authorization"); v != "" {
		cred, ok := bearer(v)
		if !ok {
			return Principal{}, errMalformed
		}
		if len(a.issuers) > 0 && looksLikeJWT(cred) {
			p, err := a.authenticateJWT(r, cred)
			if err == errIssuerNotAccepted && a.introspect != nil {
				// A JWT of an issuer whose signatures are not checked
				// here may still be one the introspecting issuer knows.
				return a.introspect.authenticate(r.Context(), cred)
			}
			return p, err
		}
		p, err := a.authenticateKey(cred)
		if (err == errInvalidKey || err == errKeyTooLong) && a.introspect != nil {
			return a.introspect.authenticate(r.Context(), cred)
		}
		return p, err
	}
	if v := r.Header.Get("X-Api-Key"); v != "" {
		return a.authenticateKey(strings.TrimSpace(v))
	}
	return Principal{}, errMissing
}

// bearer takes the credential out of "Bearer <cred>" (scheme is
// case-insensitive per RFC 9110).
func bearer(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	cred := strings.TrimSpace(v[len(scheme):])
	return cred, cred != ""
}

// looksLikeJWT: a compact JWS has exactly two dots; generated keys have none.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

func (a *Authenticator) authenticateKey(key string) (Principal, error) {
	if len(key) > maxAPIKeyBytes {
		return Principal{}, errKeyTooLong
	}
	if key == "" {
		return Principal{}, errMissing
	}
	h := HashKey(key)
	e, ok := a.keys[h]
	// The map lookup narrows the search; the constant-time comparison of
	// the whole hash is what accepts the key, so accepting never depends on
	// a short-circuiting comparison of secret-derived bytes.
	if !ok || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 {
		return Principal{}, errInvalidKey
	}
	k := &a.g.Keys[e.index]
	return Principal{
		Tenant:      a.g.Tenants[e.tenant].Name,
		TenantIndex: int(e.tenant),
		KeyName:     k.Name,
		KeyIndex:    int(e.index),
	}, nil
}

// HashKey is the SHA-256 of a key, the only form of it a policy holds.
func HashKey(key string) [32]byte {
	var buf [maxAPIKeyBytes]byte
	if len(key) <= len(buf) {
		// Copying into a stack buffer keeps the hot path free of allocations.
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}

// GenerateKey mints a new key ("ig-" + 32 random bytes, base64url) and its
// hash. The key is shown to the operator once; only the hash is stored.
func GenerateKey() (string, [32]byte, error) {
	var b [keyRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("auth: reading random bytes: %w", err)
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key), nil
}

// FormatHash writes a hash the way policy documents hold it.
func FormatHash(h [32]byte) string { return fmt.Sprintf("sha256:%x", h[:]) }
