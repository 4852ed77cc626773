package outbound

import (
	"net/http"

	"github.com/infergate/infergate/l7/openai"
)

// Invalid is the error for a request a provider kind cannot express; the
// client gets it as a 400.
func Invalid(msg string) *openai.Error {
	return openai.BadRequest("unsupported_for_provider", msg, "")
}

// MapError is the OpenAI error for a provider's status and message. The
// status is kept where both mean the same, so the gateway's retry rules
// (429, 5xx) apply alike; an overloaded provider (529) is a 503, and a
// status with no OpenAI meaning a 502.
func MapError(status int, msg, code string) *openai.Error {
	if msg == "" {
		msg = http.StatusText(status)
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	e := &openai.Error{Status: status, Message: msg, Code: code}
	switch {
	case status == 529:
		e.Status, e.Type = http.StatusServiceUnavailable, openai.TypeServer
	case status == http.StatusTooManyRequests:
		e.Type = openai.TypeRateLimit
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Type = openai.TypeAuthentication
	case status >= 400 && status < 500:
		e.Type = openai.TypeInvalidRequest
	case status >= 500 && status < 600:
		e.Type = openai.TypeServer
	default:
		e.Status, e.Type = http.StatusBadGateway, openai.TypeUpstream
	}
	return e
}

// maxEchoed bounds how much of a provider's or client's value (a role, a
// part type, an error code) an error message repeats.
const maxEchoed = 40

// Clip is s cut to maxEchoed bytes, for echoing it in an error.
func Clip(s string) string {
	if len(s) > maxEchoed {
		return s[:maxEchoed]
	}
	return s
}
