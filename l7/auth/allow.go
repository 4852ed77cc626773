package auth

import (
	"net/http"
	"slices"

	"github.com/infergate/infergate/policy"
)

// Codes of the authorisation errors.
const (
	CodeEndpointNotAllowed = "endpoint_not_allowed"
	CodeModelNotAllowed    = "model_not_allowed"
)

// grant is a compiled allow list; a nil set allows everything.
type grant struct {
	models    map[string]struct{}
	endpoints map[string]struct{}
}

func newGrant(a policy.Allow) grant {
	var g grant
	if len(a.Models) > 0 {
		g.models = make(map[string]struct{}, len(a.Models))
		for _, m := range a.Models {
			g.models[m] = struct{}{}
		}
	}
	if len(a.Endpoints) > 0 {
		g.endpoints = make(map[string]struct{}, len(a.Endpoints))
		for _, e := range a.Endpoints {
			g.endpoints[e] = struct{}{}
		}
	}
	return g
}

func allowed(set map[string]struct{}, v string) bool {
	if set == nil {
		return true
	}
	_, ok := set[v]
	return ok
}

// AuthorizeEndpoint refuses a path that the principal's tenant or key does
// not allow. It runs before the body is read.
func (a *Authenticator) AuthorizeEndpoint(p *Principal, path string) error {
	if !allowed(a.tenantGrants[p.TenantIndex].endpoints, path) || p.KeyIndex >= 0 && !allowed(a.keyGrants[p.KeyIndex].endpoints, path) {
		return &Error{Status: http.StatusForbidden, Code: CodeEndpointNotAllowed, Message: "this key may not call " + truncateText(path, 128)}
	}
	return nil
}

// AuthorizeModel refuses a model that the principal's tenant, key or token
// does not allow. name is the policy's model name; asked is what the
// client sent (an alias, perhaps), which a token's models claim may list
// instead.
func (a *Authenticator) AuthorizeModel(p *Principal, name, asked string) error {
	ok := allowed(a.tenantGrants[p.TenantIndex].models, name) &&
		(p.KeyIndex < 0 || allowed(a.keyGrants[p.KeyIndex].models, name)) &&
		(p.Models == nil || slices.Contains(p.Models, name) || slices.Contains(p.Models, asked))
	if !ok {
		return &Error{Status: http.StatusForbidden, Code: CodeModelNotAllowed, Message: "this key may not use the model `" + truncateText(asked, 128) + "`"}
	}
	return nil
}

// MayListModel reports whether /v1/models shows the model to p.
func (a *Authenticator) MayListModel(p *Principal, name string, aliases []string) bool {
	if a.AuthorizeModel(p, name, name) == nil {
		return true
	}
	for _, al := range aliases {
		if a.AuthorizeModel(p, name, al) == nil {
			return true
		}
	}
	return false
}

// Restricted reports whether anything narrows what p may call: when not,
// the full model list can be served as it is.
func (a *Authenticator) Restricted(p *Principal) bool {
	t := a.tenantGrants[p.TenantIndex]
	if t.models != nil || t.endpoints != nil || p.Models != nil {
		return true
	}
	if p.KeyIndex >= 0 {
		k := a.keyGrants[p.KeyIndex]
		return k.models != nil || k.endpoints != nil
	}
	return false
}
