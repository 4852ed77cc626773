package anthropicout

import (
	"bytes"
	"encoding/json"

	"github.com/infergate/infergate/l7/translate/outbound"
)

// Structured output. The Messages API has no response_format, so a
// json_schema or json_object request becomes one tool whose input schema
// is the client's schema, with tool_choice forcing it: the model's
// tool_use input is then JSON valid for that schema. Its answer is turned
// back into what an OpenAI client expects: the input as the message text
// and finish_reason stop, never a tool call the client did not offer.
// Client tools beside a response format are refused, since forcing the
// schema tool would forbid them and not forcing it would not guarantee JSON.

// StructuredTool is the name of the tool that carries the response format.
const StructuredTool = "json_response"

var objectSchema = json.RawMessage(`{"type":"object"}`)

// structuredSchema is the schema r's response_format asks for; ok is false
// when r asks for plain text.
func structuredSchema(r *outbound.Request) (schema json.RawMessage, ok bool, err error) {
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
			return nil, false, outbound.Invalid("response_format json_schema needs json_schema")
		}
		s := rf.JSONSchema.Schema
		if t := bytes.TrimSpace(s); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			return objectSchema, true, nil
		}
		if t := bytes.TrimSpace(s); t[0] != '{' || !json.Valid(t) {
			return nil, false, outbound.Invalid("response_format json_schema.schema must be a JSON object")
		}
		return s, true, nil
	}
	return nil, false, outbound.Invalid("response_format type must be text, json_object or json_schema")
}

// isStructured says r's answer comes back through StructuredTool.
func isStructured(r *outbound.Request) bool {
	_, ok, err := structuredSchema(r)
	return ok && err == nil
}

// applyStructured adds the forced schema tool to ar when r asks for JSON.
func applyStructured(ar *request, r *outbound.Request) error {
	schema, ok, err := structuredSchema(r)
	if err != nil || !ok {
		return err
	}
	if len(ar.Tools) > 0 {
		return outbound.Invalid("response_format " + r.ResponseFormat.Type + " cannot be combined with tools for provider kind anthropic")
	}
	ar.Tools = []tool{{Name: StructuredTool, Description: "Answer with JSON that follows this schema.", InputSchema: schema}}
	ar.ToolChoice = &toolChoice{Type: "tool", Name: StructuredTool}
	return nil
}
