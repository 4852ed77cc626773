package outbound

import (
	"bytes"
	"encoding/json"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Structured output for providers without response_format (Anthropic's
// Messages API, Bedrock's Converse): a json_schema or json_object request
// becomes one tool, named StructuredTool, whose input schema is the
// client's schema, with the tool choice forcing it; the model's tool input
// is then JSON for that schema. The translator turns it back into what an
// OpenAI client expects: the input as the message text and finish_reason
// stop, never a tool call the client did not offer. Client tools beside a
// response format are refused: forcing the schema tool would forbid them,
// and not forcing it would not guarantee JSON.

// StructuredTool is the name of the tool that carries the response format.
const StructuredTool = "json_response"

var objectSchema = json.RawMessage(`{"type":"object"}`)

// StructuredSchema is the JSON schema r's response_format asks for; ok is
// false when r asks for plain text. An error is the client's (400).
func StructuredSchema(r *chatwire.Request) (schema json.RawMessage, ok bool, err error) {
	rf := r.ResponseFormat
	if rf == nil {
		return nil, false, nil
	}
	switch rf.Type {
	case "", "text":
		return nil, false, nil
	case "json_object":
		return objectSchema, true, nil
	case "json_schema":
		if rf.JSONSchema == nil {
			return nil, false, Invalid("response_format json_schema needs json_schema")
		}
		t := bytes.TrimSpace(rf.JSONSchema.Schema)
		if len(t) == 0 || bytes.Equal(t, []byte("null")) {
			return objectSchema, true, nil
		}
		if t[0] != '{' || !json.Valid(t) {
			return nil, false, Invalid("response_format json_schema.schema must be a JSON object")
		}
		return rf.JSONSchema.Schema, true, nil
	}
	return nil, false, Invalid("response_format type must be text, json_object or json_schema")
}

// Structured says r's answer comes back through StructuredTool.
func Structured(r *chatwire.Request) bool {
	_, ok, err := StructuredSchema(r)
	return ok && err == nil
}

// StructuredWithTools is the error for a response format beside client
// tools, sent to provider kind.
func StructuredWithTools(r *chatwire.Request, kind string) error {
	return Invalid("response_format " + r.ResponseFormat.Type + " cannot be combined with tools for provider kind " + kind)
}
