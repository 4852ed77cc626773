package gateway

import (
	"net/http"

	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/l7/tokens"
)

// modelStage resolves the requested model (or alias) to the policy's
// model and its token counter, and refuses a model the principal may not
// use.
//
// Reads: x.req.Model, x.principal. Writes: x.model, x.counter.
type modelStage struct {
	routes   *route.Table
	counters map[*route.Model]*tokens.Counter
	auth     *auth.Authenticator
}

func newModelStage(_ *Gateway, cfg *config) (stage, error) {
	return &modelStage{routes: cfg.routes, counters: cfg.counters, auth: cfg.auth}, nil
}

func (s *modelStage) serve(x *exchange) *openai.Error {
	m, ok := s.routes.Lookup(x.req.Model)
	if !ok {
		return &openai.Error{Status: http.StatusNotFound, Type: openai.TypeInvalidRequest, Code: "model_not_found",
			Message: "the model `" + truncate(x.req.Model, 128) + "` does not exist or you do not have access to it", Param: "model"}
	}
	if err := s.auth.AuthorizeModel(&x.principal, m.Name, x.req.Model); err != nil {
		return authError(err)
	}
	x.model = m
	x.counter = s.counters[m]
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
