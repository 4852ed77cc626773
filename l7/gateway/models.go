package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/policy"
)

// listModels serves /v1/models to authenticated clients.
func (g *Gateway) listModels(w http.ResponseWriter, r *http.Request) {
	cfg := g.cfg.Load()
	p, err := cfg.auth.Authenticate(r)
	if err != nil {
		writeAPIError(w, modelsAPI(r), authError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body := cfg.models
	if cfg.auth.Restricted(&p) {
		body = allowedModelsBody(cfg, &p)
	}
	if wantsAnthropicShape(r) {
		body = anthropicModelsBody(body)
	}
	_, _ = w.Write(body)
}

// allowedModelsBody is the /v1/models body of a principal whose tenant,
// key or token narrows the models: only those it may use.
func allowedModelsBody(cfg *config, p *auth.Principal) []byte {
	list := modelList{Object: "list", Data: []modelObject{}}
	for _, m := range cfg.c.Gateway.Models {
		for _, n := range append([]string{m.Name}, m.Aliases...) {
			if cfg.auth.AuthorizeModel(p, m.Name, n) == nil {
				list.Data = append(list.Data, modelObject{ID: n, Object: "model", OwnedBy: "infergate"})
			}
		}
	}
	b, _ := json.Marshal(list)
	return b
}

// retrieveModel serves /v1/models/{id} (the SDKs' models.retrieve) to
// authenticated clients: a name or alias the policy serves, else 404.
func (g *Gateway) retrieveModel(w http.ResponseWriter, r *http.Request) {
	cfg := g.cfg.Load()
	p, err := cfg.auth.Authenticate(r)
	if err != nil {
		writeAPIError(w, modelsAPI(r), authError(err))
		return
	}
	id := r.PathValue("id")
	b, ok := cfg.model[id]
	if ok && cfg.auth.Restricted(&p) {
		m, _ := cfg.routes.Lookup(id)
		// A model the principal may not use is answered as OpenAI
		// answers one the key has no access to.
		ok = m != nil && cfg.auth.AuthorizeModel(&p, m.Name, id) == nil
	}
	if !ok {
		writeAPIError(w, modelsAPI(r), &openai.Error{Status: http.StatusNotFound, Type: openai.TypeInvalidRequest, Code: "model_not_found",
			Message: "the model `" + truncate(id, 128) + "` does not exist or you do not have access to it", Param: "model"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if wantsAnthropicShape(r) {
		b = anthropicModelBody(b)
	}
	_, _ = w.Write(b)
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelsBody builds the /v1/models body and each model's own body.
type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

func modelsBody(c *policy.Compiled) ([]byte, map[string][]byte) {
	list := modelList{Object: "list", Data: []modelObject{}}
	each := map[string][]byte{}
	for _, m := range c.Gateway.Models {
		for _, n := range append([]string{m.Name}, m.Aliases...) {
			o := modelObject{ID: n, Object: "model", OwnedBy: "infergate"}
			list.Data = append(list.Data, o)
			each[n], _ = json.Marshal(o)
		}
	}
	b, _ := json.Marshal(list)
	return b, each
}
