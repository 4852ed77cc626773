package gateway

import (
	"errors"
	"net/http"

	"github.com/infergate/infergate/l7/auth"
	"github.com/infergate/infergate/l7/openai"
)

// authStage identifies the caller (API key, JWT, introspected token or
// client certificate) from the request head and refuses an endpoint its
// tenant or key may not call, before any of the body is read.
//
// Reads: x.r's head. Writes: x.principal.
type authStage struct{ auth *auth.Authenticator }

// newAuthStage uses the snapshot's authenticator, which /v1/models shares
// and Apply closes once the snapshot is replaced.
func newAuthStage(_ *Gateway, cfg *config) (stage, error) {
	return &authStage{auth: cfg.auth}, nil
}

func (s *authStage) serve(x *exchange) *openai.Error {
	p, err := s.auth.Authenticate(x.r)
	if err != nil {
		return authError(err)
	}
	if err := s.auth.AuthorizeEndpoint(&p, x.r.URL.Path); err != nil {
		return authError(err)
	}
	x.principal = p
	return nil
}

// authError is the client's answer to a failed authentication: the auth
// stage's own status and message, or a plain 401.
func authError(err error) *openai.Error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		typ := openai.TypeAuthentication
		switch ae.Status {
		case http.StatusForbidden:
			typ = openai.TypePermission
		case http.StatusServiceUnavailable:
			typ = openai.TypeServer
		}
		return &openai.Error{Status: ae.Status, Type: typ, Code: ae.Code, Message: ae.Message}
	}
	return &openai.Error{Status: http.StatusUnauthorized, Type: openai.TypeAuthentication, Code: "invalid_credentials", Message: "authentication failed"}
}
