package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/infergate/infergate/policy"
)

const testSecret = "0123456789abcdef0123456789abcdef-hs256"

func gatewayWithKeys(t testing.TB, n int) (*policy.CompiledGateway, []string) {
	t.Helper()
	g := &policy.CompiledGateway{Tenants: []policy.Tenant{{Name: "acme"}, {Name: "globex"}}}
	keys := make([]string, n)
	for i := range n {
		k, h, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		g.Keys = append(g.Keys, policy.CompiledKey{Name: fmt.Sprintf("key-%d", i), Tenant: i % 2, Hash: h})
	}
	return g, keys
}

func wantErr(t *testing.T, err error, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *auth.Error %s", err, err, code)
	}
	if e.Code != code || e.Status != http.StatusUnauthorized {
		t.Fatalf("error %d %s (%s), want 401 %s", e.Status, e.Code, e.Message, code)
	}
}

func req(headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func TestGenerateKeyAndHash(t *testing.T) {
	k, h, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k, KeyPrefix) || len(k) != len(KeyPrefix)+43 {
		t.Fatalf("key %q has the wrong shape", k)
	}
	if _, err := base64.RawURLEncoding.DecodeString(k[len(KeyPrefix):]); err != nil {
		t.Fatalf("key body is not base64url: %v", err)
	}
	if h != sha256.Sum256([]byte(k)) || HashKey(k) != h {
		t.Fatal("hash is not the SHA-256 of the key")
	}
	long := strings.Repeat("x", 1000)
	if HashKey(long) != sha256.Sum256([]byte(long)) {
		t.Fatal("long key hashed wrongly")
	}
	k2, _, _ := GenerateKey()
	if k2 == k {
		t.Fatal("two generated keys are equal")
	}
	if got := FormatHash(h); got != fmt.Sprintf("sha256:%x", h) || len(got) != 7+64 {
		t.Fatalf("FormatHash = %q", got)
	}
}

func TestAPIKeys(t *testing.T) {
	g, keys := gatewayWithKeys(t, 4)
	a, err := New(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	p, err := a.Authenticate(req("Authorization", "Bearer "+keys[1]))
	if err != nil {
		t.Fatal(err)
	}
	if p.Tenant != "globex" || p.TenantIndex != 1 || p.KeyName != "key-1" || p.KeyIndex != 1 {
		t.Fatalf("principal %+v", p)
	}
	p, err = a.Authenticate(req("x-api-key", keys[2]))
	if err != nil || p.Tenant != "acme" || p.KeyIndex != 2 {
		t.Fatalf("x-api-key: %+v %v", p, err)
	}
	if _, err := a.Authenticate(req("Authorization", "bearer  "+keys[0]+" ")); err != nil {
		t.Fatalf("lower-case scheme and padding: %v", err)
	}

	revoked, _, _ := GenerateKey() // a valid-looking key whose hash is not in the policy
	_, err = a.Authenticate(req("Authorization", "Bearer "+revoked))
	wantErr(t, err, CodeInvalidAPIKey)
	if strings.Contains(err.Error(), revoked) || strings.Contains(err.Error(), revoked[3:10]) {
		t.Fatal("error echoes the key")
	}
	_, err = a.Authenticate(req("Authorization", "Bearer "+keys[0][:len(keys[0])-1]))
	wantErr(t, err, CodeInvalidAPIKey)
	_, err = a.Authenticate(req())
	wantErr(t, err, CodeMissingCredentials)
	_, err = a.Authenticate(req("Authorization", "Basic dXNlcjpwYXNz"))
	wantErr(t, err, CodeMissingCredentials)
	_, err = a.Authenticate(req("Authorization", "Bearer "))
	wantErr(t, err, CodeMissingCredentials)
	_, err = a.Authenticate(req("x-api-key", strings.Repeat("k", maxAPIKeyBytes+1)))
	wantErr(t, err, CodeInvalidAPIKey)

	// A revoked key is one the next policy no longer lists.
	g2 := *g
	g2.Keys = g.Keys[1:]
	a2, err := New(&g2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a2.Authenticate(req("Authorization", "Bearer "+keys[0]))
	wantErr(t, err, CodeInvalidAPIKey)
	if p, err := a2.Authenticate(req("Authorization", "Bearer "+keys[1])); err != nil || p.KeyIndex != 0 || p.KeyName != "key-1" {
		t.Fatalf("remaining key: %+v %v", p, err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	g, _ := gatewayWithKeys(t, 2)
	g.Keys[1].Hash = g.Keys[0].Hash
	if _, err := New(g, Options{}); err == nil {
		t.Fatal("duplicate hash accepted")
	}
	g, _ = gatewayWithKeys(t, 1)
	g.Keys[0].Tenant = 7
	if _, err := New(g, Options{}); err == nil {
		t.Fatal("key with unknown tenant accepted")
	}
	g, _ = gatewayWithKeys(t, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: "x", HS256SecretEnv: "SHORT"}}
	if _, err := New(g, Options{Getenv: func(string) string { return "short" }}); err == nil {
		t.Fatal("short HS256 secret accepted")
	}
	g.JWT = []policy.JWTIssuer{{Issuer: "x", HS256SecretEnv: "S", JWKSURL: "http://127.0.0.1:1/"}}
	if _, err := New(g, Options{Getenv: func(string) string { return testSecret }}); err == nil {
		t.Fatal("two key sources accepted")
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(iss, aud, tenant string, exp time.Time) jwt.MapClaims {
	c := jwt.MapClaims{"iss": iss, "sub": "user-7", "exp": exp.Unix(), "iat": time.Now().Add(-time.Minute).Unix()}
	if aud != "" {
		c["aud"] = aud
	}
	if tenant != "" {
		c["org"] = tenant
	}
	return c
}

func TestJWTHS256(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	fileSecret := "file-secret-file-secret-file-secret-0001"
	if err := os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, keys := gatewayWithKeys(t, 1)
	g.JWT = []policy.JWTIssuer{
		{Issuer: "https://idp.example", Audience: "infergate", HS256SecretEnv: "IG_SECRET", TenantClaim: "org"},
		{Issuer: "https://file.example", HS256SecretFile: secretFile, TenantClaim: "org"},
	}
	a, err := New(g, Options{Getenv: func(k string) string {
		if k == "IG_SECRET" {
			return testSecret
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	iss, aud := "https://idp.example", "infergate"
	future := time.Now().Add(time.Hour)
	hs := jwt.SigningMethodHS256
	secret := []byte(testSecret)
	bearerReq := func(tok string) *http.Request { return req("Authorization", "Bearer "+tok) }

	p, err := a.Authenticate(bearerReq(sign(t, hs, secret, "", claims(iss, aud, "globex", future))))
	if err != nil {
		t.Fatal(err)
	}
	if p.Tenant != "globex" || p.TenantIndex != 1 || p.KeyIndex != -1 || p.Subject != "user-7" {
		t.Fatalf("principal %+v", p)
	}
	if p, err := a.Authenticate(bearerReq(sign(t, hs, []byte(fileSecret), "", claims("https://file.example", "", "acme", future)))); err != nil || p.Tenant != "acme" {
		t.Fatalf("secret from file: %+v %v", p, err)
	}
	// API keys still work next to JWT issuers.
	if _, err := a.Authenticate(bearerReq(keys[0])); err != nil {
		t.Fatalf("API key beside JWT: %v", err)
	}
	// Within the leeway an expired token still passes; beyond it, not.
	if _, err := a.Authenticate(bearerReq(sign(t, hs, secret, "", claims(iss, aud, "acme", time.Now().Add(-10*time.Second))))); err != nil {
		t.Fatalf("token within leeway: %v", err)
	}

	bad := map[string]string{
		"bad signature":    sign(t, hs, []byte(testSecret+"x"), "", claims(iss, aud, "acme", future)),
		"expired":          sign(t, hs, secret, "", claims(iss, aud, "acme", time.Now().Add(-2*time.Minute))),
		"wrong issuer":     sign(t, hs, secret, "", claims("https://evil.example", aud, "acme", future)),
		"wrong audience":   sign(t, hs, secret, "", claims(iss, "other", "acme", future)),
		"no audience":      sign(t, hs, secret, "", claims(iss, "", "acme", future)),
		"unknown tenant":   sign(t, hs, secret, "", claims(iss, aud, "initech", future)),
		"no tenant":        sign(t, hs, secret, "", claims(iss, aud, "", future)),
		"no expiry":        sign(t, hs, secret, "", jwt.MapClaims{"iss": iss, "aud": aud, "org": "acme"}),
		"other issuer's":   sign(t, hs, []byte(fileSecret), "", claims(iss, aud, "acme", future)),
		"alg none":         sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(iss, aud, "acme", future)),
		"HS384":            sign(t, jwt.SigningMethodHS384, secret, "", claims(iss, aud, "acme", future)),
		"malformed":        "eyJhbGciOiJIUzI1NiJ9.e30.!!!",
		"issued in future": sign(t, hs, secret, "", jwt.MapClaims{"iss": iss, "aud": aud, "org": "acme", "exp": future.Unix(), "iat": future.Unix()}),
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := a.Authenticate(bearerReq(tok))
			wantErr(t, err, CodeInvalidToken)
		})
	}
	_, err = a.Authenticate(bearerReq(strings.Repeat("a", maxTokenBytes) + ".b.c"))
	wantErr(t, err, CodeInvalidToken)
}

// jwksServer serves a swappable key set and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, keys ...any) {
	doc := map[string]any{"keys": keys}
	b, _ := json.Marshal(doc)
	s.mu.Lock()
	s.body, s.status = b, status
	s.mu.Unlock()
}

func (s *jwksServer) setRaw(status int, body []byte) {
	s.mu.Lock()
	s.body, s.status = body, status
	s.mu.Unlock()
}

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	b, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]string{
		"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(b[33:]),
	}
}

func TestJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t)
	srv.set(http.StatusOK, rsaJWK("rsa-1", &rsaKey.PublicKey), ecJWK("ec-1", &ecKey.PublicKey))

	const iss, aud = "https://sso.example", "gw"
	g, _ := gatewayWithKeys(t, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: iss, Audience: aud, JWKSURL: srv.URL, TenantClaim: "org"}}
	a, err := New(g, Options{JWKSMinRefresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	future := time.Now().Add(time.Hour)
	auth := func(tok string) (Principal, error) { return a.Authenticate(req("Authorization", "Bearer "+tok)) }

	if p, err := auth(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims(iss, aud, "acme", future))); err != nil || p.Tenant != "acme" || p.KeyIndex != -1 {
		t.Fatalf("RS256: %+v %v", p, err)
	}
	if p, err := auth(sign(t, jwt.SigningMethodES256, ecKey, "ec-1", claims(iss, aud, "globex", future))); err != nil || p.Tenant != "globex" {
		t.Fatalf("ES256: %+v %v", p, err)
	}

	t.Run("alg confusion", func(t *testing.T) {
		// The classic attack: sign HS256 with the issuer's public key as
		// the HMAC secret. Both the DER and PEM encodings are tried.
		der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		for _, secret := range [][]byte{der, pemKey, rsaKey.PublicKey.N.Bytes()} {
			_, err := auth(sign(t, jwt.SigningMethodHS256, secret, "rsa-1", claims(iss, aud, "acme", future)))
			wantErr(t, err, CodeInvalidToken)
		}
		// An EC key id used with an RS256 signature must not verify either.
		_, err = auth(sign(t, jwt.SigningMethodRS256, rsaKey, "ec-1", claims(iss, aud, "acme", future)))
		wantErr(t, err, CodeInvalidToken)
		_, err = auth(sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", claims(iss, aud, "acme", future)))
		wantErr(t, err, CodeInvalidToken)
	})

	t.Run("wrong key, issuer, audience, expiry", func(t *testing.T) {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for _, tok := range []string{
			sign(t, jwt.SigningMethodES256, other, "ec-1", claims(iss, aud, "acme", future)),
			sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims(iss, "nope", "acme", future)),
			sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims("https://x.example", aud, "acme", future)),
			sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims(iss, aud, "acme", time.Now().Add(-time.Hour))),
		} {
			_, err := auth(tok)
			wantErr(t, err, CodeInvalidToken)
		}
	})

	t.Run("rotation picked up on unknown kid", func(t *testing.T) {
		rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
		srv.set(http.StatusOK, rsaJWK("rsa-2", &rotated.PublicKey), ecJWK("ec-1", &ecKey.PublicKey))
		time.Sleep(30 * time.Millisecond) // past the on-demand refresh rate limit
		tok := sign(t, jwt.SigningMethodRS256, rotated, "rsa-2", claims(iss, aud, "acme", future))
		if _, err := auth(tok); err != nil {
			t.Fatalf("rotated key not picked up: %v", err)
		}
		// The retired key is gone with the refresh.
		_, err := auth(sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims(iss, aud, "acme", future)))
		wantErr(t, err, CodeInvalidToken)
	})

	t.Run("JWKS down keeps cached keys", func(t *testing.T) {
		srv.setRaw(http.StatusInternalServerError, []byte("down"))
		time.Sleep(30 * time.Millisecond)
		before := srv.fetches.Load()
		// An unknown kid forces a fetch, which fails ...
		_, err := auth(sign(t, jwt.SigningMethodES256, ecKey, "ec-unknown", claims(iss, aud, "acme", future)))
		wantErr(t, err, CodeInvalidToken)
		if srv.fetches.Load() == before {
			t.Fatal("unknown kid did not trigger a fetch")
		}
		// ... and the cached keys still verify.
		if _, err := auth(sign(t, jwt.SigningMethodES256, ecKey, "ec-1", claims(iss, aud, "acme", future))); err != nil {
			t.Fatalf("cached key lost after failed refresh: %v", err)
		}
		// An oversized document is refused the same way.
		srv.setRaw(http.StatusOK, []byte(`{"keys":[`+strings.Repeat(" ", maxJWKSBytes)+`]}`))
		time.Sleep(30 * time.Millisecond)
		_, _ = auth(sign(t, jwt.SigningMethodES256, ecKey, "ec-unknown-2", claims(iss, aud, "acme", future)))
		if _, err := auth(sign(t, jwt.SigningMethodES256, ecKey, "ec-1", claims(iss, aud, "acme", future))); err != nil {
			t.Fatalf("cached key lost after oversized JWKS: %v", err)
		}
	})
}

func TestJWKSRefreshRateLimited(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := newJWKSServer(t)
	srv.set(http.StatusOK, ecJWK("ec-1", &ecKey.PublicKey))
	g, _ := gatewayWithKeys(t, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: "i", JWKSURL: srv.URL}}
	a, err := New(g, Options{JWKSMinRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	future := time.Now().Add(time.Hour)
	c := jwt.MapClaims{"iss": "i", "tenant": "acme", "exp": future.Unix()}
	if _, err := a.Authenticate(req("Authorization", "Bearer "+sign(t, jwt.SigningMethodES256, ecKey, "ec-1", c))); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		tok := sign(t, jwt.SigningMethodES256, ecKey, fmt.Sprintf("forged-%d", i), c)
		_, err := a.Authenticate(req("Authorization", "Bearer "+tok))
		wantErr(t, err, CodeInvalidToken)
	}
	if n := srv.fetches.Load(); n > 2 {
		t.Fatalf("%d JWKS fetches for 50 unknown kids; the rate limit allows 1 (+1 racing start-up)", n)
	}
}

func TestParseJWKSRejectsWeakKeys(t *testing.T) {
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	b, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK("w", &weak.PublicKey)}})
	if _, err := parseJWKS(b); err == nil {
		t.Fatal("1024-bit RSA key accepted")
	}
	b, _ = json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "EC", "crv": "P-256", "x": base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "y": base64.RawURLEncoding.EncodeToString(make([]byte, 32))}}})
	if _, err := parseJWKS(b); err == nil {
		t.Fatal("EC point not on the curve accepted")
	}
	b, _ = json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "oct", "k": "c2VjcmV0"}}})
	if _, err := parseJWKS(b); err == nil {
		t.Fatal("symmetric JWK accepted")
	}
}

func BenchmarkAPIKey100k(b *testing.B) {
	g, keys := gatewayWithKeys(b, 100_000)
	a, err := New(g, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i] = req("Authorization", "Bearer "+keys[(i*97)%len(keys)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := a.Authenticate(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAPIKeyInvalid100k(b *testing.B) {
	g, _ := gatewayWithKeys(b, 100_000)
	a, err := New(g, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	bad, _, _ := GenerateKey()
	r := req("x-api-key", bad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkJWTHS256(b *testing.B) {
	g, _ := gatewayWithKeys(b, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: "i", Audience: "gw", HS256SecretEnv: "S"}}
	a, err := New(g, Options{Getenv: func(string) string { return testSecret }})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tok := sign(b, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"iss": "i", "aud": "gw", "tenant": "acme", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	r := req("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTES256JWKS(b *testing.B) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	doc, _ := json.Marshal(map[string]any{"keys": []any{ecJWK("ec-1", &ecKey.PublicKey)}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(doc) }))
	defer srv.Close()
	g, _ := gatewayWithKeys(b, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: "i", JWKSURL: srv.URL}}
	a, err := New(g, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tok := sign(b, jwt.SigningMethodES256, ecKey, "ec-1", jwt.MapClaims{"iss": "i", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix()})
	r := req("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestJWKSBackgroundRefresh(t *testing.T) {
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := newJWKSServer(t)
	srv.set(http.StatusOK, ecJWK("old", &oldKey.PublicKey))
	g, _ := gatewayWithKeys(t, 0)
	g.JWT = []policy.JWTIssuer{{Issuer: "i", JWKSURL: srv.URL, JWKSRefresh: policy.Duration(20 * time.Millisecond)}}
	// On-demand refreshes are rate-limited away: only the timer can fetch.
	a, err := New(g, Options{JWKSMinRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer a.Close() // idempotent
	c := jwt.MapClaims{"iss": "i", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix()}
	oldTok := sign(t, jwt.SigningMethodES256, oldKey, "old", c)
	newTok := sign(t, jwt.SigningMethodES256, newKey, "new", c)
	if _, err := a.Authenticate(req("Authorization", "Bearer "+oldTok)); err != nil {
		t.Fatal(err)
	}
	srv.set(http.StatusOK, ecJWK("new", &newKey.PublicKey))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errNew := a.Authenticate(req("Authorization", "Bearer "+newTok))
		_, errOld := a.Authenticate(req("Authorization", "Bearer "+oldTok))
		if errNew == nil && errOld != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed refresh never swapped keys: new %v, old %v", errNew, errOld)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Peers for the figures above: the floors set by hashing and by the
// signature check alone.
func BenchmarkPeerSHA256Only(b *testing.B) {
	k, _, _ := GenerateKey()
	b.ReportAllocs()
	for b.Loop() {
		HashKey(k)
	}
}

func BenchmarkPeerES256VerifyOnly(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := sha256.Sum256([]byte("header.payload"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) {
			b.Fatal("verify failed")
		}
	}
}

// FuzzAuthenticate: whatever the headers hold, Authenticate returns a
// principal or an *Error, never panics, and never echoes the credential.
func FuzzAuthenticate(f *testing.F) {
	g, keys := gatewayWithKeys(f, 2)
	g.JWT = []policy.JWTIssuer{{Issuer: "i", HS256SecretEnv: "S"}}
	a, err := New(g, Options{Getenv: func(string) string { return testSecret }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	tok := sign(f, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{"iss": "i", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix()})
	for _, s := range []string{"Bearer " + keys[0], "Bearer " + tok, "bearer x.y.z", "Basic abc", "Bearer ", "Bearer a.b", tok} {
		f.Add(s, "")
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, authz, apiKey string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if apiKey != "" {
			r.Header["X-Api-Key"] = []string{apiKey}
		}
		p, err := a.Authenticate(r)
		if err == nil {
			if p.Tenant == "" {
				t.Fatalf("principal without tenant: %+v", p)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
			t.Fatalf("error %T %v", err, err)
		}
		for _, cred := range []string{authz, apiKey} {
			if len(cred) >= 12 && strings.Contains(e.Message, cred) {
				t.Fatalf("message echoes the credential: %q", e.Message)
			}
		}
	})
}

// An Authenticator that replaces another (a policy apply, keys create or
// revoke) keeps the JWKS cache of every issuer whose configuration is
// unchanged: no fetch at the apply, and tokens keep verifying while the
// identity provider is down. A changed issuer gets a fresh cache.
func TestJWKSCacheKeptAcrossApplies(t *testing.T) {
	key, srv, issuer, tok := ecIssuer(t)
	iss, aud := issuer.Issuer, issuer.Audience
	g1, _ := gatewayWithKeys(t, 1)
	g1.JWT = []policy.JWTIssuer{issuer}
	opts := Options{JWKSMinRefresh: time.Hour}
	a1, err := New(g1, opts)
	if err != nil {
		t.Fatal(err)
	}
	authWith := func(a *Authenticator) error {
		_, err := a.Authenticate(req("Authorization", "Bearer "+tok))
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for authWith(a1) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the first key set never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for the first Authenticator, want 1", n)
	}

	// The identity provider goes down; an apply that changes only the
	// API keys replaces the Authenticator.
	srv.set(http.StatusInternalServerError)
	g2, _ := gatewayWithKeys(t, 2)
	g2.JWT = g1.JWT
	opts.Previous = a1
	a2, err := New(g2, opts)
	if err != nil {
		t.Fatal(err)
	}
	a1.Close() // as the gateway does once requests on it are done
	if err := authWith(a2); err != nil {
		t.Fatalf("after an apply with the IdP down: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the apply, want still 1", n)
	}

	// A changed issuer (another refresh period) does not share the cache.
	srv.set(http.StatusOK, ecJWK("k1", &key.PublicKey))
	g3, _ := gatewayWithKeys(t, 2)
	g3.JWT = []policy.JWTIssuer{{Issuer: iss, Audience: aud, JWKSURL: srv.URL, TenantClaim: "org", JWKSRefresh: policy.Duration(time.Hour)}}
	opts.Previous = a2
	a3, err := New(g3, opts)
	if err != nil {
		t.Fatal(err)
	}
	for srv.fetches.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("a changed issuer did not fetch its own key set")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a2.Close()
	a3.Close()
	a3.Close() // twice is harmless
}

// The first request, arriving before the refresh loop's first fetch (one
// processor: the loop is only queued when New returns), fetches the key
// set itself; the loop then counts that fetch instead of asking the
// provider again.
func TestJWKSFirstRequestFetchesOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	_, srv, issuer, tok := ecIssuer(t)
	g, _ := gatewayWithKeys(t, 1)
	g.JWT = []policy.JWTIssuer{issuer}
	a, err := New(g, Options{JWKSMinRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Authenticate(req("Authorization", "Bearer "+tok)); err != nil {
		t.Fatalf("first request: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // the loop has run
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches of the key set, want 1", n)
	}
}

// ecIssuer is an identity provider with one P-256 key (kid k1) served from
// a JWKS endpoint: the key, the server, the issuer's configuration and a
// token it signed for tenant acme, valid for an hour.
func ecIssuer(t *testing.T) (*ecdsa.PrivateKey, *jwksServer, policy.JWTIssuer, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t)
	srv.set(http.StatusOK, ecJWK("k1", &key.PublicKey))
	const iss, aud = "https://sso.example", "gw"
	issuer := policy.JWTIssuer{Issuer: iss, Audience: aud, JWKSURL: srv.URL, TenantClaim: "org"}
	return key, srv, issuer, sign(t, jwt.SigningMethodES256, key, "k1", claims(iss, aud, "acme", time.Now().Add(time.Hour)))
}
