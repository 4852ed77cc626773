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
		if n != 1 {
			v.add(jp, "needs exactly one of hs256SecretFile, hs256SecretEnv or jwksURL (has %d)", n)
		}
		if j.JWKSURL != "" {
			v.httpURL(jp+".jwksURL", j.JWKSURL)
		}
		if j.HS256SecretFile != "" && !filepath.IsAbs(j.HS256SecretFile) {
			v.add(jp+".hs256SecretFile", "%q must be an absolute path", j.HS256SecretFile)
		}
		if j.JWKSRefresh != 0 && j.JWKSURL == "" {
			v.add(jp+".jwksRefresh", "only applies with jwksURL")
		}
		v.duration(jp+".jwksRefresh", j.JWKSRefresh, 10*time.Second, 24*time.Hour)
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
