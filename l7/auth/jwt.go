package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/infergate/infergate/policy"
)

const (
	jwksFetchTimeout      = 5 * time.Second
	defaultJWKSRefresh    = 15 * time.Minute
	defaultJWKSMinRefresh = 30 * time.Second
	defaultLeeway         = 30 * time.Second
	defaultTenantClaim    = "tenant"

	// maxJWKSBytes bounds a JWKS response; real ones are a few KiB.
	maxJWKSBytes = 256 << 10
	// maxJWKSKeys bounds how many keys one document may hold.
	maxJWKSKeys = 64
	// minRSABits refuses keys weaker than NIST's floor.
	minRSABits = 2048
	// minHS256SecretBytes: RFC 7518 3.2 requires a key at least as long as
	// the hash output.
	minHS256SecretBytes = 32
	// maxSecretFileBytes bounds the secret file read at start-up.
	maxSecretFileBytes = 64 << 10
)

var getenv = os.Getenv

type issuer struct {
	cfg         policy.JWTIssuer
	tenantClaim string
	parser      *jwt.Parser
	hsSecret    []byte     // HS256 issuers
	jwks        *jwksCache // JWKS issuers
}

// newIssuer builds the issuer c; prev is the issuer of the same name in the
// Authenticator being replaced, whose JWKS cache is shared when c is
// unchanged.
func newIssuer(c policy.JWTIssuer, opts Options, prev *issuer) (*issuer, error) {
	is := &issuer{cfg: c, tenantClaim: c.TenantClaim}
	if is.tenantClaim == "" {
		is.tenantClaim = defaultTenantClaim
	}
	sources := 0
	for _, s := range []string{c.HS256SecretFile, c.HS256SecretEnv, c.JWKSURL} {
		if s != "" {
			sources++
		}
	}
	if c.Discovery {
		sources++
	}
	if sources > 1 || sources == 0 && c.Introspection == nil {
		return nil, errors.New("exactly one of hs256SecretFile, hs256SecretEnv, jwksURL or discovery, or only introspection, is required")
	}
	// Only the algorithms of this issuer's key source verify: an HS256
	// token can never be checked against a JWKS public key used as an HMAC
	// secret, and "none" is never accepted.
	var algs []string
	switch {
	case c.HS256SecretFile != "":
		b, err := readBounded(c.HS256SecretFile, maxSecretFileBytes)
		if err != nil {
			return nil, fmt.Errorf("reading HS256 secret: %w", err)
		}
		is.hsSecret = []byte(strings.TrimRight(string(b), "\r\n"))
		algs = []string{jwt.SigningMethodHS256.Alg()}
	case c.HS256SecretEnv != "":
		is.hsSecret = []byte(opts.Getenv(c.HS256SecretEnv))
		algs = []string{jwt.SigningMethodHS256.Alg()}
	case c.JWKSURL == "" && !c.Discovery:
		// Introspection only: opaque tokens, no signatures to check.
		return is, nil
	case prev != nil && sameKeySource(prev.cfg, c) && prev.jwks != nil && prev.jwks.acquire():
		is.jwks = prev.jwks
		algs = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}
	default:
		cache, err := newJWKSCache(c, opts)
		if err != nil {
			return nil, err
		}
		is.jwks = cache
		algs = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}
	}
	if is.jwks == nil && len(is.hsSecret) < minHS256SecretBytes {
		return nil, fmt.Errorf("HS256 secret has %d bytes, need at least %d", len(is.hsSecret), minHS256SecretBytes)
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(c.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
		jwt.WithIssuedAt(),
	}
	if c.Audience != "" {
		popts = append(popts, jwt.WithAudience(c.Audience))
	}
	is.parser = jwt.NewParser(popts...)
	return is, nil
}

// sameKeySource reports whether two configurations of an issuer fetch the
// same key set, so that a new Authenticator can share the old one's cache.
func sameKeySource(a, b policy.JWTIssuer) bool {
	return a.Issuer == b.Issuer && a.JWKSURL == b.JWKSURL && a.Discovery == b.Discovery && a.JWKSRefresh == b.JWKSRefresh
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func (is *issuer) close() {
	if is.jwks != nil {
		is.jwks.close()
	}
}

func (is *issuer) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		if is.jwks == nil {
			if alg != jwt.SigningMethodHS256.Alg() {
				return nil, fmt.Errorf("algorithm %s not accepted", alg)
			}
			return is.hsSecret, nil
		}
		kid, _ := t.Header["kid"].(string)
		return is.jwks.lookup(ctx, kid, alg)
	}
}

// unverifiedIssuer reads only the iss claim, to pick the issuer whose keys
// and algorithms then verify the whole token.
var unverifiedParser = jwt.NewParser()

func (a *Authenticator) authenticateJWT(r *http.Request, tok string) (Principal, error) {
	if len(tok) > maxTokenBytes {
		return Principal{}, errTokenTooLong
	}
	var peek jwt.RegisteredClaims
	if _, _, err := unverifiedParser.ParseUnverified(tok, &peek); err != nil {
		return Principal{}, invalidToken("the bearer token is malformed")
	}
	is, ok := a.issuers[peek.Issuer]
	if !ok || is.parser == nil {
		return Principal{}, errIssuerNotAccepted
	}
	claims := jwt.MapClaims{}
	if _, err := is.parser.ParseWithClaims(tok, claims, is.keyfunc(r.Context())); err != nil {
		return Principal{}, invalidToken("%s", describeJWTError(err))
	}
	return a.principalFromClaims(is, claims)
}

var errIssuerNotAccepted = invalidToken("the token's issuer is not accepted")

// describeJWTError names the failed check without echoing token content.
func describeJWTError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token lacks a required claim (exp)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token's signature is not valid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token cannot be verified with this issuer's keys and algorithms"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the bearer token is malformed"
	default:
		return "the bearer token is not valid"
	}
}

// jwksCache holds an issuer's verification keys by kid. Readers never block
// on a fetch: the key set is swapped atomically.
type jwksCache struct {
	// url is the JWKS address: fixed (jwksURL), or read from the
	// issuer's discovery document on every fetch (discovery != "").
	url        atomic.Pointer[string]
	discovery  *discovery
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	minRefresh time.Duration
	refresh    time.Duration

	keys atomic.Pointer[map[string]jwk]

	mu          sync.Mutex // serialises fetches; guards the three below
	lastAttempt time.Time
	lastErr     error  // the outcome of the fetch at lastAttempt
	attempts    uint64 // fetches so far, the loop's and lookups'

	// refs counts the issuers sharing the cache (one per Authenticator
	// that kept it across an apply); the last close stops it.
	refs     atomic.Int32
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type jwk struct {
	alg string // RS256 or ES256
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

func newJWKSCache(c policy.JWTIssuer, opts Options) (*jwksCache, error) {
	jc := &jwksCache{
		client:     opts.HTTPClient,
		now:        opts.Now,
		minRefresh: opts.JWKSMinRefresh,
		refresh:    c.JWKSRefresh.D(),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if jc.refresh <= 0 {
		jc.refresh = defaultJWKSRefresh
	}
	if c.Discovery {
		d, err := newDiscovery(c.Issuer, opts.HTTPClient)
		if err != nil {
			return nil, err
		}
		jc.discovery = d
		jc.log = opts.Logger.With("issuer", c.Issuer, "discovery", d.url)
	} else {
		if !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
			return nil, fmt.Errorf("jwksURL must be an http(s) URL")
		}
		u := c.JWKSURL
		jc.url.Store(&u)
		jc.log = opts.Logger.With("issuer", c.Issuer, "jwks", c.JWKSURL)
		if strings.HasPrefix(c.JWKSURL, "http://") {
			jc.log.Warn("JWKS fetched over plain HTTP: anyone on the path can substitute signing keys")
		}
	}
	empty := map[string]jwk{}
	jc.keys.Store(&empty)
	jc.refs.Store(1)
	go jc.loop()
	return jc, nil
}

// acquire takes a reference for another issuer; false when the cache was
// already stopped.
func (c *jwksCache) acquire() bool {
	for {
		n := c.refs.Load()
		if n <= 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// close lets go of one reference and stops the refresh with the last.
func (c *jwksCache) close() {
	if c.refs.Add(-1) > 0 {
		return
	}
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

// loop refreshes on a timer; after a failure it retries sooner, at the
// on-demand rate limit, while the cached keys keep verifying.
func (c *jwksCache) loop() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-c.stop; cancel() }()
	var seen uint64
	for {
		c.mu.Lock()
		// A lookup of an unknown kid may have fetched while the loop
		// waited (the first requests race the loop's first fetch): that
		// fetch counts, so the provider is not asked twice.
		if c.attempts == seen {
			c.lastAttempt = c.now()
			c.lastErr = c.fetch(ctx)
			c.attempts++
		}
		seen = c.attempts
		err := c.lastErr
		c.mu.Unlock()
		wait := c.refresh
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("JWKS refresh failed; keeping cached keys", "err", err)
			wait = min(c.refresh, c.minRefresh)
		}
		t := time.NewTimer(wait)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// lookup finds the key for kid and alg, fetching the JWKS again (at most
// once per minRefresh) when the kid is unknown: that is how a rotated
// signing key is picked up before the next timed refresh.
func (c *jwksCache) lookup(ctx context.Context, kid, alg string) (any, error) {
	if k, ok := pick(*c.keys.Load(), kid, alg); ok {
		return k, nil
	}
	c.refreshIfStale(ctx)
	if k, ok := pick(*c.keys.Load(), kid, alg); ok {
		return k, nil
	}
	return nil, errors.New("no key with the token's kid and algorithm")
}

func pick(m map[string]jwk, kid, alg string) (any, bool) {
	if kid != "" {
		k, ok := m[kid]
		if !ok || k.alg != alg {
			return nil, false
		}
		return k.key, true
	}
	// No kid: acceptable only when exactly one key could have signed.
	var found any
	n := 0
	for _, k := range m {
		if k.alg == alg {
			found = k.key
			n++
		}
	}
	return found, n == 1
}

func (c *jwksCache) refreshIfStale(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.minRefresh {
		return
	}
	c.lastAttempt = now
	c.lastErr = c.fetch(ctx)
	c.attempts++
	if c.lastErr != nil {
		c.log.Warn("JWKS refresh for an unknown kid failed; keeping cached keys", "err", c.lastErr)
	}
}

type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// fetch replaces the key set; on any error the old set stays. Caller holds mu.
func (c *jwksCache) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	if c.discovery != nil {
		// The document is read again each time: an issuer may move its
		// key set, and a rotation is often announced that way.
		doc, err := c.discovery.fetch(ctx)
		if err != nil {
			return err
		}
		c.url.Store(&doc.JWKSURI)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *c.url.Load(), nil)
	if err != nil {
		return fmt.Errorf("building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("reading JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	m, err := parseJWKS(body)
	if err != nil {
		return err
	}
	c.keys.Store(&m)
	return nil
}

func parseJWKS(body []byte) (map[string]jwk, error) {
	var doc struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("JWKS holds %d keys, at most %d accepted", len(doc.Keys), maxJWKSKeys)
	}
	m := make(map[string]jwk, len(doc.Keys))
	var problems []string
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		parsed, err := parseJWK(k)
		if err != nil {
			problems = append(problems, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		m[k.Kid] = parsed
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("JWKS has no usable RS256/ES256 signing key (%s)", strings.Join(problems, "; "))
	}
	return m, nil
}

func parseJWK(k jwkJSON) (jwk, error) {
	b64 := base64.RawURLEncoding
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != "RS256" {
			return jwk{}, fmt.Errorf("RSA key for unsupported alg %q", k.Alg)
		}
		n, err := b64.DecodeString(k.N)
		if err != nil {
			return jwk{}, fmt.Errorf("modulus: %w", err)
		}
		e, err := b64.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return jwk{}, errors.New("bad exponent")
		}
		var exp int
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if pub.N.BitLen() < minRSABits {
			return jwk{}, fmt.Errorf("RSA modulus of %d bits, need %d", pub.N.BitLen(), minRSABits)
		}
		if exp < 3 || exp%2 == 0 {
			return jwk{}, errors.New("bad exponent")
		}
		return jwk{alg: "RS256", key: pub}, nil
	case "EC":
		if k.Crv != "P-256" || (k.Alg != "" && k.Alg != "ES256") {
			return jwk{}, fmt.Errorf("EC key on curve %q alg %q; only P-256/ES256", k.Crv, k.Alg)
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return jwk{}, errors.New("bad EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return jwk{}, fmt.Errorf("EC point: %w", err)
		}
		return jwk{alg: "ES256", key: pub}, nil
	default:
		return jwk{}, fmt.Errorf("unsupported kty %q", k.Kty)
	}
}
