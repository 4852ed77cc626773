package auth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	defaultIntrospectionTTL     = 30 * time.Second
	defaultIntrospectionEntries = 10_000
	// maxIntrospectionBytes bounds an introspection answer.
	maxIntrospectionBytes = 64 << 10
	introspectionTimeout  = 5 * time.Second
	// maxIntrospectionsInFlight bounds the calls to one issuer at once: a
	// flood of made-up tokens is refused here instead of becoming a
	// flood on the identity provider.
	maxIntrospectionsInFlight = 64
)

var (
	errIntrospectionUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: "auth_unavailable",
		Message: "the bearer token could not be checked with its issuer; try again"}
	errIntrospectionBusy = &Error{Status: http.StatusServiceUnavailable, Code: "auth_unavailable",
		Message: "too many bearer tokens are being checked with their issuer; try again"}
	errTokenInactive = invalidToken("the bearer token is not active (expired, revoked or unknown)")
)

// introspector asks one issuer about opaque bearer tokens (RFC 7662) and
// keeps each answer for the cache TTL (never past the token's exp): a
// revoked token is refused within that TTL, and a token sent again meanwhile
// costs no call. Negative answers are kept as well, so a client repeating a
// bad token does not reach the issuer again. Tokens are kept only as their
// SHA-256.
type introspector struct {
	a        *Authenticator
	is       *issuer
	url      string // "" when read from the issuer's discovery document
	clientID string
	secret   string
	client   *http.Client
	now      func() time.Time
	log      *slog.Logger
	ttl      time.Duration
	slots    chan struct{}

	mu    sync.Mutex
	max   int
	cache map[[32]byte]*list.Element
	lru   *list.List // of *introspected, most recent first
}

type introspected struct {
	key     [32]byte
	p       Principal
	err     error
	expires time.Time
}

// introspectors are tried in policy order; the first that knows the token
// as active answers.
type introspectors []*introspector

func (a *Authenticator) addIntrospection(is *issuer, opts Options) error {
	c := is.cfg.Introspection
	var secret string
	switch {
	case c.ClientSecretFile != "":
		b, err := readBounded(c.ClientSecretFile, maxSecretFileBytes)
		if err != nil {
			return fmt.Errorf("reading the client secret: %w", err)
		}
		secret = strings.TrimRight(string(b), "\r\n")
	case c.ClientSecretEnv != "":
		secret = opts.Getenv(c.ClientSecretEnv)
	}
	if secret == "" {
		return errors.New("the client secret is empty")
	}
	if c.URL == "" && (is.jwks == nil || is.jwks.discovery == nil) {
		return errors.New("no url, and no discovery to find one")
	}
	in := &introspector{
		a: a, is: is, url: c.URL, clientID: c.ClientID, secret: secret,
		client: opts.HTTPClient, now: opts.Now,
		log:   opts.Logger.With("issuer", is.cfg.Issuer),
		ttl:   c.CacheTTL.D(),
		max:   c.MaxEntries,
		slots: make(chan struct{}, maxIntrospectionsInFlight),
		cache: map[[32]byte]*list.Element{},
		lru:   list.New(),
	}
	if in.ttl <= 0 {
		in.ttl = defaultIntrospectionTTL
	}
	if in.max <= 0 {
		in.max = defaultIntrospectionEntries
	}
	a.introspect = append(a.introspect, in)
	return nil
}

func (ins introspectors) authenticate(ctx context.Context, token string) (Principal, error) {
	if len(token) > maxTokenBytes {
		return Principal{}, errTokenTooLong
	}
	key := sha256.Sum256([]byte(token))
	var last error = errTokenInactive
	for _, in := range ins {
		p, err := in.authenticate(ctx, key, token)
		if err == nil {
			return p, nil
		}
		if last == errTokenInactive || err != errTokenInactive {
			last = err
		}
	}
	return Principal{}, last
}

func (in *introspector) authenticate(ctx context.Context, key [32]byte, token string) (Principal, error) {
	now := in.now()
	if p, err, ok := in.cached(key, now); ok {
		return p, err
	}
	select {
	case in.slots <- struct{}{}:
	default:
		return Principal{}, errIntrospectionBusy
	}
	claims, err := in.call(ctx, token)
	<-in.slots
	if err != nil {
		in.log.Warn("token introspection failed", "err", err)
		return Principal{}, errIntrospectionUnavailable
	}
	p, expires, err := in.judge(claims, now)
	in.store(key, p, err, expires)
	return p, err
}

// judge turns an answer into a principal, or the reason it is refused,
// and how long that holds.
func (in *introspector) judge(claims map[string]any, now time.Time) (Principal, time.Time, error) {
	expires := now.Add(in.ttl)
	if active, _ := claims["active"].(bool); !active {
		return Principal{}, expires, errTokenInactive
	}
	if iss, ok := claims["iss"].(string); ok && iss != in.is.cfg.Issuer {
		return Principal{}, expires, errIssuerNotAccepted
	}
	if exp, ok := claims["exp"].(float64); ok {
		at := time.Unix(int64(exp), 0)
		if !at.After(now) {
			return Principal{}, expires, invalidToken("the token is expired")
		}
		if at.Before(expires) {
			expires = at
		}
	}
	if aud := in.is.cfg.Audience; aud != "" {
		auds, _ := stringList(claims["aud"])
		if s, ok := claims["aud"].(string); ok {
			auds = []string{s}
		}
		if !slices.Contains(auds, aud) {
			return Principal{}, expires, invalidToken("the token's audience is not accepted")
		}
	}
	p, err := in.a.principalFromClaims(in.is, claims)
	return p, expires, err
}

// call posts the token to the endpoint (RFC 7662 section 2.1), as a
// confidential client with HTTP Basic (RFC 6749 section 2.3.1: the id and
// secret form-encoded first).
func (in *introspector) call(ctx context.Context, token string) (map[string]any, error) {
	endpoint := in.url
	if endpoint == "" {
		d := in.is.jwks.discovery
		doc := d.last.Load()
		if doc == nil {
			var err error
			fctx, cancel := context.WithTimeout(ctx, introspectionTimeout)
			doc, err = d.fetch(fctx)
			cancel()
			if err != nil {
				return nil, err
			}
		}
		if doc.IntrospectionEndpoint == "" {
			return nil, errors.New("the OpenID configuration has no introspection_endpoint")
		}
		endpoint = doc.IntrospectionEndpoint
	}
	ctx, cancel := context.WithTimeout(ctx, introspectionTimeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("building the introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection answered status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the introspection answer: %w", err)
	}
	if len(body) > maxIntrospectionBytes {
		return nil, fmt.Errorf("introspection answer larger than %d bytes", maxIntrospectionBytes)
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil || claims == nil {
		return nil, errors.New("the introspection answer is not a JSON object")
	}
	if _, ok := claims["active"].(bool); !ok {
		return nil, errors.New("the introspection answer has no boolean active")
	}
	return claims, nil
}

func (in *introspector) cached(key [32]byte, now time.Time) (Principal, error, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	e, ok := in.cache[key]
	if !ok {
		return Principal{}, nil, false
	}
	v := e.Value.(*introspected)
	if !now.Before(v.expires) {
		in.lru.Remove(e)
		delete(in.cache, key)
		return Principal{}, nil, false
	}
	in.lru.MoveToFront(e)
	return v.p, v.err, true
}

func (in *introspector) store(key [32]byte, p Principal, err error, expires time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if e, ok := in.cache[key]; ok {
		in.lru.Remove(e)
	}
	for in.lru.Len() >= in.max {
		old := in.lru.Back()
		in.lru.Remove(old)
		delete(in.cache, old.Value.(*introspected).key)
	}
	in.cache[key] = in.lru.PushFront(&introspected{key: key, p: p, err: err, expires: expires})
}

// cacheLen is the number of answers kept (for tests).
func (in *introspector) cacheLen() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lru.Len()
}
