package serve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// A policy apply that leaves the JWT issuer unchanged keeps its JWKS
// cache: the apply fetches nothing and JWTs keep working while the
// identity provider is down.
func TestApplyKeepsJWKSCache(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey.Bytes()
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "kid": "k1", "crv": "P-256", "alg": "ES256",
		"x": base64.RawURLEncoding.EncodeToString(pub[1:33]), "y": base64.RawURLEncoding.EncodeToString(pub[33:])}}})
	var fetches atomic.Int64
	var down atomic.Bool
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(doc)
	}))
	defer idp.Close()
	const iss = "https://sso.example"
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": iss, "tenant": "acme",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}

	b := newBackend(t, mockllm.Config{})
	s := newServer(t, Options{})
	policyWith := func(keyName string) *policy.Compiled {
		c := testPolicy([]backend{b}, []uint32{100})
		c.Gateway.Listen = "127.0.0.1:0"
		c.Gateway.Keys = []policy.CompiledKey{{Name: keyName, Tenant: 0, Hash: auth.HashKey(testKey)}}
		c.Gateway.JWT = []policy.JWTIssuer{{Issuer: iss, JWKSURL: idp.URL}}
		return c
	}
	jwtChat := func() int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+signed)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if err := s.Apply(policyWith("k-1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for jwtChat() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("JWT never accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := fetches.Load()
	down.Store(true)
	for i := range 3 { // e.g. keys create, keys revoke, another apply
		if err := s.Apply(policyWith(fmt.Sprintf("k-%d", i+2))); err != nil {
			t.Fatal(err)
		}
		if got := jwtChat(); got != http.StatusOK {
			t.Fatalf("apply %d with the identity provider down: JWT request got %d", i+2, got)
		}
	}
	if n := fetches.Load(); n != before {
		t.Fatalf("%d JWKS fetches during applies, want none", n-before)
	}
}
