// Package openai holds the OpenAI-compatible wire shapes the gateway reads
// and writes: the request fields it needs, server-sent event parsing for
// streamed responses, and OpenAI's JSON error shape.
//
// What is inspected, counted and billed must be what the upstream reads.
// So every field a model reads is taken as a Text (message contents and
// text parts of any type, refusals, tool and function descriptions and
// parameter schemas, tool-call arguments, response schemas), and keys are
// matched exactly, as Python servers do. A top-level key that differs from
// one the gateway reads only by case ("Messages", "Stream", "ſtream") is
// refused as ambiguous, since a Go upstream would match it; such a key
// inside a message, part, tool or call is dropped before the body goes
// upstream (Rewrite.StripVariants), so either kind of server reads what was
// inspected.
package openai

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error types used in the "type" field.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
	TypeUpstream       = "upstream_error"
)

// Error is an OpenAI-style API error; it is written as
// {"error":{"message","type","code","param"}} with Status.
type Error struct {
	Status  int
	Type    string
	Code    string // empty is written as null
	Message string
	Param   string // empty is written as null
}

func (e *Error) Error() string { return strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message }

// Errorf-free constructors keep call sites short.

// BadRequest is a 400 invalid_request_error.
func BadRequest(code, msg, param string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Code: code, Message: msg, Param: param}
}

type wireError struct {
	Error wireBody `json:"error"`
}

type wireBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    *string `json:"code"`
	Param   *string `json:"param"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Marshal returns the JSON body of e.
func (e *Error) Marshal() []byte {
	b, _ := json.Marshal(wireError{Error: wireBody{Message: e.Message, Type: e.Type, Code: optional(e.Code), Param: optional(e.Param)}})
	return b
}

// Write sends e as the response; headers already set on w are kept.
func (e *Error) Write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.Marshal())
}
