package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/infergate/infergate/policy"
)

// testIssuer is an OpenID provider run by the test over TLS: discovery,
// a JWKS it can rotate, and RFC 7662 introspection of opaque tokens it can
// revoke, checking the client's Basic credentials.
type testIssuer struct {
	*httptest.Server
	issuer string // as the discovery document names it (default: the URL)

	mu     sync.Mutex
	keys   []any
	tokens map[string]map[string]any // opaque token -> answer when active

	introspections atomic.Int64
	fail           atomic.Bool // introspection answers 500
}

const (
	testClientID     = "gateway"
	testClientSecret = "s3cret:with&odd=chars"
)

func newTestIssuer(t *testing.T) *testIssuer {
	ti := &testIssuer{tokens: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss := ti.issuer
		if iss == "" {
			iss = ti.URL
		}
		json.NewEncoder(w).Encode(map[string]string{
			"issuer": iss, "jwks_uri": ti.URL + "/keys", "introspection_endpoint": ti.URL + "/introspect",
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		ti.mu.Lock()
		defer ti.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"keys": ti.keys})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		ti.introspections.Add(1)
		id, secret, ok := r.BasicAuth()
		// RFC 6749 2.3.1: the client encodes both before Basic.
		if !ok || id != testClientID || secret != "s3cret%3Awith%26odd%3Dchars" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.FormValue("token") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		if ti.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		ti.mu.Lock()
		ans, ok := ti.tokens[r.FormValue("token")]
		ti.mu.Unlock()
		if !ok {
			ans = map[string]any{"active": false}
		}
		json.NewEncoder(w).Encode(ans)
	})
	ti.Server = httptest.NewTLSServer(mux)
	t.Cleanup(ti.Close)
	return ti
}

func (ti *testIssuer) setKeys(keys ...any) {
	ti.mu.Lock()
	ti.keys = keys
	ti.mu.Unlock()
}

func (ti *testIssuer) issue(token string, claims map[string]any) {
	ti.mu.Lock()
	ti.tokens[token] = claims
	ti.mu.Unlock()
}

func (ti *testIssuer) revoke(token string) {
	ti.mu.Lock()
	delete(ti.tokens, token)
	ti.mu.Unlock()
}

func wantStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("error %v, want %d %s", err, status, code)
	}
}

// TestOIDCDiscoveryAndRotation: the JWKS is found through the issuer's
// discovery document, a rotated signing key is picked up, and a document
// naming another issuer is refused.
func TestOIDCDiscoveryAndRotation(t *testing.T) {
	ti := newTestIssuer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ti.setKeys(ecJWK("k1", &k1.PublicKey))

	g, _ := gatewayWithKeys(t, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: ti.URL, Discovery: true, TenantClaim: "org"}}
	a, err := New(g, Options{HTTPClient: ti.Client(), JWKSMinRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	future := time.Now().Add(time.Hour)
	auth := func(tok string) (Principal, error) { return a.Authenticate(req("Authorization", "Bearer "+tok)) }

	p, err := auth(sign(t, jwt.SigningMethodES256, k1, "k1", claims(ti.URL, "", "acme", future)))
	if err != nil || p.Tenant != "acme" {
		t.Fatalf("token signed by the discovered key: %+v, %v", p, err)
	}
	// Rotation: the issuer now signs with k2 and publishes only k2.
	ti.setKeys(ecJWK("k2", &k2.PublicKey))
	time.Sleep(5 * time.Millisecond) // past JWKSMinRefresh
	if _, err := auth(sign(t, jwt.SigningMethodES256, k2, "k2", claims(ti.URL, "", "acme", future))); err != nil {
		t.Fatalf("token signed by the rotated key: %v", err)
	}
	if _, err := auth(sign(t, jwt.SigningMethodES256, k1, "k1", claims(ti.URL, "", "acme", future))); err == nil {
		t.Fatal("token signed by the retired key accepted after rotation")
	}

	// A discovery document for another issuer is not believed.
	evil := newTestIssuer(t)
	evil.issuer = "https://someone-else.example"
	evil.setKeys(ecJWK("k1", &k1.PublicKey))
	g2, _ := gatewayWithKeys(t, 0)
	g2.JWT = []policy.JWTIssuer{{Issuer: evil.URL, Discovery: true, TenantClaim: "org"}}
	b, err := New(g2, Options{HTTPClient: evil.Client(), JWKSMinRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Authenticate(req("Authorization", "Bearer "+sign(t, jwt.SigningMethodES256, k1, "k1", claims(evil.URL, "", "acme", future)))); err == nil {
		t.Fatal("keys of a discovery document naming another issuer were used")
	}
}

// TestIntrospection: opaque tokens are checked with the issuer's
// introspection endpoint (found by discovery); answers are cached, so a
// revoked token is refused once the cache TTL has passed and not before;
// an unreachable issuer is a 503, not a refusal, and is not cached.
func TestIntrospection(t *testing.T) {
	ti := newTestIssuer(t)
	ti.issue("opaque-alice", map[string]any{"active": true, "org": "acme", "sub": "alice", "client_id": "key-0",
		"exp": float64(time.Now().Add(time.Hour).Unix())})

	now := time.Now()
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }

	g, keys := gatewayWithKeys(t, 2) // key-0 of acme, key-1 of globex
	ti.setKeys()
	g.JWT = []policy.JWTIssuer{{Issuer: ti.URL, Discovery: true, TenantClaim: "org", KeyClaim: "client_id",
		Introspection: &policy.Introspection{ClientID: testClientID, ClientSecretEnv: "SECRET",
			CacheTTL: policy.Duration(10 * time.Second), MaxEntries: 2}}}
	a, err := New(g, Options{HTTPClient: ti.Client(), Now: clock,
		Getenv: func(k string) string { return map[string]string{"SECRET": testClientSecret}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	auth := func(tok string) (Principal, error) { return a.Authenticate(req("Authorization", "Bearer "+tok)) }

	p, err := auth("opaque-alice")
	if err != nil || p.Tenant != "acme" || p.Subject != "alice" || p.KeyName != "key-0" || p.KeyIndex != 0 {
		t.Fatalf("introspected token: %+v, %v", p, err)
	}
	if _, err := auth("opaque-alice"); err != nil {
		t.Fatal(err)
	}
	if n := ti.introspections.Load(); n != 1 {
		t.Fatalf("%d introspection calls for one token used twice, want 1 (cached)", n)
	}

	ti.revoke("opaque-alice")
	advance(5 * time.Second)
	if _, err := auth("opaque-alice"); err != nil {
		t.Fatalf("within the cache TTL the cached answer holds: %v", err)
	}
	advance(6 * time.Second)
	_, err = auth("opaque-alice")
	wantErr(t, err, CodeInvalidToken)

	// Unknown tokens are refused, and the refusal is cached too.
	calls := ti.introspections.Load()
	for range 3 {
		_, err = auth("made-up")
		wantErr(t, err, CodeInvalidToken)
	}
	if n := ti.introspections.Load() - calls; n != 1 {
		t.Fatalf("%d calls for a bad token sent three times, want 1", n)
	}

	// A key claim naming a key of another tenant is refused.
	ti.issue("opaque-crossed", map[string]any{"active": true, "org": "acme", "client_id": "key-1"})
	_, err = auth("opaque-crossed")
	wantErr(t, err, CodeInvalidToken)

	// The cache is bounded (MaxEntries 2).
	if n := a.introspect[0].cacheLen(); n > 2 {
		t.Fatalf("cache holds %d answers, bound 2", n)
	}

	// The issuer failing is not the token failing.
	ti.fail.Store(true)
	ti.issue("opaque-bob", map[string]any{"active": true, "org": "globex", "client_id": "key-1"})
	_, err = auth("opaque-bob")
	wantStatus(t, err, http.StatusServiceUnavailable, "auth_unavailable")
	ti.fail.Store(false)
	if p, err := auth("opaque-bob"); err != nil || p.Tenant != "globex" {
		t.Fatalf("after the issuer came back: %+v, %v", p, err)
	}

	// API keys still work beside introspection, without a call.
	calls = ti.introspections.Load()
	if p, err := auth(keys[1]); err != nil || p.KeyName != "key-1" {
		t.Fatalf("API key beside introspection: %+v, %v", p, err)
	}
	if ti.introspections.Load() != calls {
		t.Fatal("an API key was sent for introspection")
	}
}

// TestIntrospectionExpiry: an answer is never kept past the token's exp.
func TestIntrospectionExpiry(t *testing.T) {
	ti := newTestIssuer(t)
	now := time.Now()
	ti.issue("short", map[string]any{"active": true, "org": "acme", "exp": float64(now.Add(3 * time.Second).Unix())})
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g, _ := gatewayWithKeys(t, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: ti.URL, TenantClaim: "org", Introspection: &policy.Introspection{
		URL: ti.URL + "/introspect", ClientID: testClientID, ClientSecretEnv: "S", CacheTTL: policy.Duration(time.Minute)}}}
	a, err := New(g, Options{HTTPClient: ti.Client(), Now: clock, Getenv: func(string) string { return testClientSecret }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Authenticate(req("Authorization", "Bearer short")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(4 * time.Second)
	mu.Unlock()
	// The issuer still calls it active (its clock is behind); the gateway
	// asks again and refuses it by its exp.
	_, err = a.Authenticate(req("Authorization", "Bearer short"))
	wantErr(t, err, CodeInvalidToken)
	if n := ti.introspections.Load(); n != 2 {
		t.Fatalf("%d calls, want 2 (the cached answer ended at exp)", n)
	}
}

// TestAllowLists: tenants' and keys' allow lists and a token's models
// claim narrow what a principal may call.
func TestAllowLists(t *testing.T) {
	g, keys := gatewayWithKeys(t, 2)
	g.Tenants[0].Allow = policy.Allow{Models: []string{"small", "large"}}
	g.Keys[0].Allow = policy.Allow{Models: []string{"small"}, Endpoints: []string{"/v1/chat/completions"}}
	g.JWT = []policy.JWTIssuer{{Issuer: "https://hs.example", HS256SecretEnv: "S", TenantClaim: "org", ModelsClaim: "models"}}
	a, err := New(g, Options{Getenv: func(string) string { return testSecret }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	k0, err := a.Authenticate(req("Authorization", "Bearer "+keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AuthorizeModel(&k0, "small", "small"); err != nil {
		t.Errorf("key-0 small: %v", err)
	}
	wantStatus(t, a.AuthorizeModel(&k0, "large", "large"), http.StatusForbidden, CodeModelNotAllowed) // the key narrows its tenant
	wantStatus(t, a.AuthorizeEndpoint(&k0, "/v1/embeddings"), http.StatusForbidden, CodeEndpointNotAllowed)
	if err := a.AuthorizeEndpoint(&k0, "/v1/chat/completions"); err != nil {
		t.Error(err)
	}
	k1, _ := a.Authenticate(req("Authorization", "Bearer "+keys[1])) // globex: no lists
	if a.Restricted(&k1) || a.AuthorizeModel(&k1, "huge", "huge") != nil {
		t.Error("an unrestricted tenant was restricted")
	}

	future := time.Now().Add(time.Hour)
	c := claims("https://hs.example", "", "globex", future)
	c["models"] = "small tiny-alias"
	p, err := a.Authenticate(req("Authorization", "Bearer "+sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AuthorizeModel(&p, "small", "small"); err != nil {
		t.Error(err)
	}
	if err := a.AuthorizeModel(&p, "tiny", "tiny-alias"); err != nil {
		t.Errorf("a models claim naming the alias the client sent: %v", err)
	}
	wantStatus(t, a.AuthorizeModel(&p, "large", "large"), http.StatusForbidden, CodeModelNotAllowed)

	delete(c, "models")
	_, err = a.Authenticate(req("Authorization", "Bearer "+sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)))
	wantErr(t, err, CodeInvalidToken)
}
