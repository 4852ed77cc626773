package policy

import (
	"encoding/hex"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"
)

// tenants checks the tenants and returns their indices by name.
func (v *validator) tenants(p string, list []Tenant) map[string]int {
	tenants := map[string]int{}
	seen := uniq{}
	for i, t := range list {
		tp := idx(p, i)
		v.name(tp+".name", t.Name)
		v.unique(seen, tp+".name", t.Name, "tenant")
		tenants[t.Name] = i
		v.limits(tp+".limits", t.Limits)
	}
	return tenants
}

func (v *validator) keys(p string, keys []APIKey, tenants map[string]int) {
	seen, hashes := uniq{}, uniq{}
	for i, k := range keys {
		kp := idx(p, i)
		v.name(kp+".name", k.Name)
		v.unique(seen, kp+".name", k.Name, "key")
		v.ref(kp+".tenant", k.Tenant, tenants, "tenant")
		if _, err := ParseKeyHash(k.Hash); err != nil {
			v.add(kp+".hash", "%v", err)
		} else {
			v.unique(hashes, kp+".hash", k.Hash, "key hash")
		}
		v.limits(kp+".limits", k.Limits)
	}
}

func (v *validator) jwt(p string, issuers []JWTIssuer) {
	seen := uniq{}
	for i, j := range issuers {
		jp := idx(p, i)
		if j.Issuer == "" {
			v.add(jp+".issuer", "is required")
		}
		v.unique(seen, jp+".issuer", j.Issuer, "issuer")
		n := 0
		for _, s := range []string{j.HS256SecretFile, j.HS256SecretEnv, j.JWKSURL} {
			if s != "" {
				n++
			}
		}
		if j.Discovery {
			n++
		}
		switch {
		case n > 1, n == 0 && j.Introspection == nil:
			v.add(jp, "needs exactly one of hs256SecretFile, hs256SecretEnv, jwksURL or discovery, or only introspection (has %d)", n)
		}
		if j.JWKSURL != "" {
			v.httpURL(jp+".jwksURL", j.JWKSURL)
		}
		if j.Discovery {
			// The discovery document is read from the issuer's own address.
			v.httpURL(jp+".issuer", j.Issuer)
		}
		if j.HS256SecretFile != "" && !filepath.IsAbs(j.HS256SecretFile) {
			v.add(jp+".hs256SecretFile", "%q must be an absolute path", j.HS256SecretFile)
		}
		if j.JWKSRefresh != 0 && j.JWKSURL == "" && !j.Discovery {
			v.add(jp+".jwksRefresh", "only applies with jwksURL or discovery")
		}
		v.duration(jp+".jwksRefresh", j.JWKSRefresh, 10*time.Second, 24*time.Hour)
		if j.Introspection != nil {
			v.introspection(jp+".introspection", j.Introspection, j.Discovery)
		}
	}
}

func (v *validator) introspection(p string, in *Introspection, discovery bool) {
	switch {
	case in.URL != "":
		v.httpURL(p+".url", in.URL)
	case !discovery:
		v.add(p+".url", "is required without discovery")
	}
	if in.ClientID == "" {
		v.add(p+".clientID", "is required")
	}
	if (in.ClientSecretFile == "") == (in.ClientSecretEnv == "") {
		v.add(p, "needs exactly one of clientSecretFile or clientSecretEnv")
	}
	if in.ClientSecretFile != "" && !filepath.IsAbs(in.ClientSecretFile) {
		v.add(p+".clientSecretFile", "%q must be an absolute path", in.ClientSecretFile)
	}
	v.duration(p+".cacheTTL", in.CacheTTL, time.Second, time.Hour)
	if in.MaxEntries < 0 || in.MaxEntries > MaxIntrospectionEntries {
		v.add(p+".maxEntries", "%d is outside 0..%d", in.MaxEntries, MaxIntrospectionEntries)
	}
}

// MaxIntrospectionEntries bounds an introspection cache.
const MaxIntrospectionEntries = 1_000_000

// allows checks the tenants' and keys' allow lists against the models
// the policy serves.
func (v *validator) allows(p string, g *Gateway) {
	models := map[string]int{}
	for i, m := range g.Models {
		models[m.Name] = i
	}
	for i, t := range g.Tenants {
		v.allow(idx(p+".tenants", i)+".allow", t.Allow, models)
	}
	for i, k := range g.Keys {
		v.allow(idx(p+".keys", i)+".allow", k.Allow, models)
	}
}

func (v *validator) allow(p string, a Allow, models map[string]int) {
	seen := uniq{}
	for i, m := range a.Models {
		v.ref(idx(p+".models", i), m, models, "model")
		v.unique(seen, idx(p+".models", i), m, "model")
	}
	seen = uniq{}
	for i, e := range a.Endpoints {
		ep := idx(p+".endpoints", i)
		if !strings.HasPrefix(e, "/v1/") || strings.ContainsAny(e, "?# ") || len(e) > 128 {
			v.add(ep, "%q is not an API path such as /v1/chat/completions", truncate(e, 80))
		}
		v.unique(seen, ep, e, "endpoint")
	}
}

func (v *validator) limits(path string, l Limits) {
	if l.BudgetUSD < 0 || math.IsNaN(l.BudgetUSD) || math.IsInf(l.BudgetUSD, 0) {
		v.add(path+".budgetUSD", "%v must be a non-negative amount", l.BudgetUSD)
	}
	if l.BudgetWindow != 0 && l.BudgetWindow.D() < time.Minute {
		v.add(path+".budgetWindow", "%s is shorter than a minute", l.BudgetWindow.D())
	}
	if l.BudgetWindow != 0 && l.BudgetUSD == 0 {
		v.add(path+".budgetWindow", "a budget window needs budgetUSD")
	}
}

// HashPrefix is how API key hashes are written: "sha256:<64 hex digits>".
const HashPrefix = "sha256:"

// ParseKeyHash reads "sha256:<64 lowercase hex digits>".
func ParseKeyHash(s string) ([32]byte, error) {
	var h [32]byte
	hexPart, ok := strings.CutPrefix(s, HashPrefix)
	if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart {
		return h, fmt.Errorf("%q is not sha256:<64 lowercase hex digits>", truncate(s, 80))
	}
	if _, err := hex.Decode(h[:], []byte(hexPart)); err != nil {
		return h, fmt.Errorf("%q is not sha256:<64 lowercase hex digits>", truncate(s, 80))
	}
	return h, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
