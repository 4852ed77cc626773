package gateway

import "github.com/infergate/infergate/l7/openai"

// requestIDStage names the request and carries the client's trace context
// upstream: a well-formed X-Request-Id from the client is kept as the
// request's id (in the response, the audit line and upstream), otherwise
// one is made; a well-formed W3C traceparent (and its tracestate) is passed
// upstream unchanged. Malformed values are dropped rather than refused: they
// are the client's bookkeeping, not its request.
//
// Reads: x.r's head. Writes: x.id, x.traceparent, x.tracestate and the
// X-Request-Id response field.
type requestIDStage struct{}

// Bounds on the client's trace fields.
const (
	maxRequestIDLen  = 128
	maxTracestateLen = 512
)

func newRequestIDStage(*Gateway, *config) (stage, error) { return requestIDStage{}, nil }

func (requestIDStage) serve(x *exchange) *openai.Error {
	h := x.r.Header
	if v := h["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		x.id = v[0]
	} else {
		x.id = newID()
	}
	x.setHeader("X-Request-Id", x.id)
	if v := h["Traceparent"]; len(v) == 1 && validTraceparent(v[0]) {
		x.traceparent = v[0]
		if s := h["Tracestate"]; len(s) == 1 && len(s[0]) <= maxTracestateLen && visibleASCII(s[0], true) {
			x.tracestate = s[0]
		}
	}
	return nil
}

// validRequestID accepts 1 to maxRequestIDLen visible ASCII bytes.
func validRequestID(s string) bool {
	return len(s) > 0 && len(s) <= maxRequestIDLen && visibleASCII(s, false)
}

func visibleASCII(s string, spaces bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c > 0x7e || c < 0x21 && !(spaces && c == ' ') {
			return false
		}
	}
	return true
}

// validTraceparent checks the W3C form version-traceid-parentid-flags
// (2, 32, 16 and 2 lower-case hex digits), version ff and all-zero ids
// excluded.
func validTraceparent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s[3:35] != "00000000000000000000000000000000" && s[36:52] != "0000000000000000"
}
