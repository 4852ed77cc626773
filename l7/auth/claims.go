package auth

import "strings"

// maxModelsClaim bounds how many models one token may list.
const maxModelsClaim = 256

// principalFromClaims maps a verified token's claims (a JWT's, or an
// introspection answer's) to a principal: the tenant from the tenant
// claim, optionally one of the tenant's keys from the key claim (the
// request then has that key's limits and allow list), and the models the
// token itself allows from the models claim.
func (a *Authenticator) principalFromClaims(is *issuer, claims map[string]any) (Principal, error) {
	tenant, _ := claims[is.tenantClaim].(string)
	if tenant == "" {
		return Principal{}, invalidToken("the token has no %q claim naming a tenant", is.tenantClaim)
	}
	idx, ok := a.tenants[tenant]
	if !ok {
		return Principal{}, invalidToken("the token's tenant is not known")
	}
	sub, _ := claims["sub"].(string)
	p := Principal{Tenant: a.g.Tenants[idx].Name, TenantIndex: idx, KeyIndex: -1, Subject: sub}
	if c := is.cfg.KeyClaim; c != "" {
		name, _ := claims[c].(string)
		k, ok := a.keyNames[keyName{tenant: idx, name: name}]
		if name == "" || !ok {
			return Principal{}, invalidToken("the token's %q claim names no key of its tenant", c)
		}
		p.KeyIndex, p.KeyName = k, a.g.Keys[k].Name
	}
	if c := is.cfg.ModelsClaim; c != "" {
		v, present := claims[c]
		if !present {
			return Principal{}, invalidToken("the token has no %q claim listing the models it may call", c)
		}
		models, ok := stringList(v)
		if !ok {
			return Principal{}, invalidToken("the token's %q claim is not a list of models", c)
		}
		if models == nil {
			models = []string{} // present and empty: nothing is allowed
		}
		p.Models = models
	}
	return p, nil
}

// stringList reads a claim that is an array of strings or a
// space-separated string (as OAuth's scope is).
func stringList(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		f := strings.Fields(t)
		return f, len(f) <= maxModelsClaim
	case []any:
		if len(t) > maxModelsClaim {
			return nil, false
		}
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	default:
		return nil, false
	}
}
