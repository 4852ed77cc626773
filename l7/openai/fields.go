package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// The fields beyond message contents that a model reads: tool and function
// definitions, tool-call arguments, refusals and response schemas. They
// are rare next to plain chat, so they are read with encoding/json after
// the one-pass decoder has found them, never on the plain-chat path.

// Bounds on tool definitions and calls.
const (
	MaxTools     = 512
	MaxToolCalls = 512
)

// Keys the gateway reads, by object. A key equal to one of them but for
// case is a variant (see Request.Variants).
var (
	topKeys      = keySet{"model", "messages", "prompt", "input", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n", "tools", "functions", "response_format"}
	messageKeys  = keySet{"role", "name", "content", "tool_calls", "tool_call_id", "refusal", "function_call"}
	partKeys     = keySet{"type", "text", "refusal"}
	toolKeys     = keySet{"type", "function"}
	functionKeys = keySet{"name", "description", "parameters", "arguments"}
	formatKeys   = keySet{"type", "json_schema"}
)

// keySet is the keys of one kind of object.
type keySet []string

// variantOf returns the key of keys that k equals but for case ("" if
// none, or if k is that key exactly). Case is Unicode simple folding, as
// encoding/json (and so a Go upstream) matches keys: "ſtream" is a variant
// of "stream". A folded letter is at most three bytes, which rules out most
// keys by length alone.
func variantOf(k []byte, keys keySet) string {
	for _, want := range keys {
		if len(k) >= len(want) && len(k) <= 3*len(want) && string(k) != want && equalFold(k, want) {
			return want
		}
	}
	return ""
}

// equalFold is bytes.EqualFold against a string, without converting it
// unless k has non-ASCII bytes (rare: the only way such a key folds to an
// ASCII one is the Kelvin sign or the long s).
func equalFold(k []byte, want string) bool {
	for _, c := range k {
		if c >= 0x80 {
			return bytes.EqualFold(k, []byte(want))
		}
	}
	if len(k) != len(want) {
		return false
	}
	for i, c := range k {
		w := want[i]
		if c == w {
			continue
		}
		if c|0x20 != w|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}

// hasVariant reports whether an object holds a variant of one of keys.
func hasVariant(obj map[string]json.RawMessage, keys keySet) bool {
	for k := range obj {
		if variantOf([]byte(k), keys) != "" {
			return true
		}
	}
	return false
}

// objects decodes a JSON array of objects (null or absent: none).
func objects(raw json.RawMessage, max int, param string) ([]map[string]json.RawMessage, *Error) {
	if isNull(bytes.TrimSpace(raw)) {
		return nil, nil
	}
	var out []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, BadRequest("invalid_value", param+" must be an array of objects", param)
	}
	if len(out) > max {
		return nil, BadRequest("invalid_value", fmt.Sprintf("at most %d %s", max, param), param)
	}
	return out, nil
}

// object decodes a JSON object (null or absent: nil).
func object(raw json.RawMessage, param string) (map[string]json.RawMessage, *Error) {
	if isNull(bytes.TrimSpace(raw)) {
		return nil, nil
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, BadRequest("invalid_value", param+" must be an object", param)
	}
	return out, nil
}

// addMessageExtras adds message i's refusal, tool-call arguments and
// legacy function-call arguments.
func (r *Request) addMessageExtras(i int) error {
	m := &r.Messages[i]
	if m.Refusal != "" {
		r.Texts = append(r.Texts, Text{Value: m.Refusal, Message: i, Part: -1, Item: -1, Kind: KindRefusal})
	}
	if len(m.ToolCalls) == 0 && len(m.FunctionCall) == 0 {
		return nil // most messages: no parameter name to build
	}
	param := "messages[" + strconv.Itoa(i) + "]"
	if len(m.ToolCalls) > 0 {
		calls, err := objects(m.ToolCalls, MaxToolCalls, param+".tool_calls")
		if err != nil {
			return err
		}
		for j, c := range calls {
			r.Variants = r.Variants || hasVariant(c, toolKeys)
			fn, err := object(c["function"], param+".tool_calls.function")
			if err != nil {
				return err
			}
			args, ok, err := functionString(fn, "arguments", param+".tool_calls.function.arguments")
			if err != nil {
				return err
			}
			if ok {
				r.Texts = append(r.Texts, Text{Value: args, Message: i, Part: -1, Item: j, Kind: KindToolCallArguments})
			}
			r.Variants = r.Variants || hasVariant(fn, functionKeys)
		}
	}
	if len(m.FunctionCall) > 0 {
		fn, err := object(m.FunctionCall, param+".function_call")
		if err != nil {
			return err
		}
		args, ok, err := functionString(fn, "arguments", param+".function_call.arguments")
		if err != nil {
			return err
		}
		if ok {
			r.Texts = append(r.Texts, Text{Value: args, Message: i, Part: -1, Item: -1, Kind: KindFunctionCallArguments})
		}
		r.Variants = r.Variants || hasVariant(fn, functionKeys)
	}
	return nil
}

// functionString reads a string field of a function object.
func functionString(fn map[string]json.RawMessage, name, param string) (string, bool, *Error) {
	raw, ok := fn[name]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, BadRequest("invalid_value", param+" must be a string", param)
	}
	return s, true, nil
}

// addTools adds the tools' and functions' descriptions and parameter
// schemas and the response format's schema.
func (r *Request) addTools() error {
	if len(r.Tools) == 0 && len(r.Functions) == 0 && len(r.ResponseFormat) == 0 {
		return nil
	}
	tools, err := objects(r.Tools, MaxTools, "tools")
	if err != nil {
		return err
	}
	for j, t := range tools {
		r.Variants = r.Variants || hasVariant(t, toolKeys)
		fn, err := object(t["function"], "tools.function")
		if err != nil {
			return err
		}
		if err := r.addFunction(fn, j, KindToolDescription, KindToolParameters, "tools.function"); err != nil {
			return err
		}
	}
	fns, err := objects(r.Functions, MaxTools, "functions")
	if err != nil {
		return err
	}
	for j, fn := range fns {
		if err := r.addFunction(fn, j, KindFunctionDescription, KindFunctionParameters, "functions"); err != nil {
			return err
		}
	}
	rf, err := object(r.ResponseFormat, "response_format")
	if err != nil {
		return err
	}
	r.Variants = r.Variants || hasVariant(rf, formatKeys)
	if raw, ok := rf["json_schema"]; ok && !isNull(raw) {
		r.Texts = append(r.Texts, Text{Value: string(bytes.TrimSpace(raw)), Message: -1, Part: -1, Item: -1, Kind: KindResponseFormat})
	}
	return nil
}

func (r *Request) addFunction(fn map[string]json.RawMessage, j int, desc, params TextKind, param string) error {
	r.Variants = r.Variants || hasVariant(fn, functionKeys)
	d, ok, err := functionString(fn, "description", param+".description")
	if err != nil {
		return err
	}
	if ok {
		r.Texts = append(r.Texts, Text{Value: d, Message: -1, Part: -1, Item: j, Kind: desc})
	}
	if raw, ok := fn["parameters"]; ok && !isNull(raw) {
		r.Texts = append(r.Texts, Text{Value: string(bytes.TrimSpace(raw)), Message: -1, Part: -1, Item: j, Kind: params})
	}
	return nil
}

// ambiguousTop returns the top-level field k is a case variant of, if any.
func ambiguousTop(k string) string { return variantOf([]byte(k), topKeys) }
