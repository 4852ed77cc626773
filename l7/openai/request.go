package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Endpoint is an OpenAI API operation the gateway serves.
type Endpoint uint8

// Endpoints.
const (
	ChatCompletions Endpoint = iota
	Completions
	Embeddings
)

// Path is the endpoint's path below /v1.
func (e Endpoint) Path() string {
	switch e {
	case ChatCompletions:
		return "/chat/completions"
	case Completions:
		return "/completions"
	default:
		return "/embeddings"
	}
}

// V1Path is Path under /v1, the request line a self-hosted backend gets.
func (e Endpoint) V1Path() string {
	switch e {
	case ChatCompletions:
		return "/v1/chat/completions"
	case Completions:
		return "/v1/completions"
	default:
		return "/v1/embeddings"
	}
}

// Bounds on what a request may hold.
const (
	MaxMessages      = 4096
	MaxPromptStrings = 2048
	MaxContentParts  = 256
	MaxTokensLimit   = 1 << 22
)

// StreamOptions is the request's stream_options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Request holds the request fields the gateway acts on; the body itself is
// forwarded as received unless something has to change.
type Request struct {
	Endpoint            Endpoint        `json:"-"`
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Stream              bool            `json:"stream"`
	StreamOptions       *StreamOptions  `json:"stream_options"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	N                   *int64          `json:"n"`
	// Tools, Functions and ResponseFormat are read for the text the model
	// reads in them (descriptions, parameter and output schemas).
	Tools          json.RawMessage `json:"tools"`
	Functions      json.RawMessage `json:"functions"`
	ResponseFormat json.RawMessage `json:"response_format"`

	// Variants is set when an object below the top level (a message, a
	// content part, a tool, a tool call) holds a key that differs from
	// one the gateway reads only by case ("Content"): upstream servers
	// that match keys case-insensitively would read it, so Rewrite drops
	// such keys before the body goes upstream. At the top level such a
	// key is refused instead (ambiguous).
	Variants bool `json:"-"`
	// ambiguous names the top-level field a case variant was found for.
	ambiguous string

	// Texts is every piece of prompt text in order (message contents and
	// text parts, prompt or input strings); inspection and counting read it
	// and redaction writes back by index.
	Texts []Text `json:"-"`
	// TokenInputs counts prompt entries sent as token arrays (already
	// tokenized): their length is their token count.
	TokenInputs int `json:"-"`
}

// Message is one chat message.
type Message struct {
	Role       string          `json:"role"`
	Name       string          `json:"name"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
	// Refusal is an assistant message's refusal text; FunctionCall is
	// the legacy function_call object.
	Refusal      string          `json:"refusal"`
	FunctionCall json.RawMessage `json:"function_call"`

	// contentRaw and contentEsc keep the fast decoder's scan of a string
	// content (the bytes between the quotes, and whether they hold
	// escapes), so that addContent need not scan the largest value of the
	// request a second time; contentScanned says they are set.
	contentRaw     []byte
	contentEsc     bool
	contentScanned bool
}

// TextKind says which field of the request a Text is.
type TextKind uint8

// Text kinds. Content is a message's content (string or text part) or a
// prompt/input string; the rest are the other fields a model reads. The
// schema kinds hold a JSON value's text (redaction must leave it valid
// JSON).
const (
	KindContent               TextKind = iota
	KindRefusalPart                    // messages[Message].content[Part].refusal
	KindRefusal                        // messages[Message].refusal
	KindToolCallArguments              // messages[Message].tool_calls[Item].function.arguments
	KindFunctionCallArguments          // messages[Message].function_call.arguments
	KindToolDescription                // tools[Item].function.description
	KindToolParameters                 // tools[Item].function.parameters (JSON)
	KindFunctionDescription            // functions[Item].description
	KindFunctionParameters             // functions[Item].parameters (JSON)
	KindResponseFormat                 // response_format.json_schema (JSON)
)

// IsJSON reports whether the kind's Value is a JSON value's text.
func (k TextKind) IsJSON() bool {
	return k == KindToolParameters || k == KindFunctionParameters || k == KindResponseFormat
}

// Text is one piece of prompt text and where it came from.
type Text struct {
	Value string
	// Message is the index of the chat message, -1 for prompt/input.
	Message int
	// Part is the index of the content part, -1 for a plain string.
	Part int
	// Item is the index in a prompt/input array, -1 for a plain string
	// (for tool kinds: the index of the tool or tool call).
	Item int
	// Kind is the field the text is in.
	Kind TextKind
}

// ParseRequest decodes and validates body for endpoint e. Errors are
// *Error values with status 400.
func ParseRequest(e Endpoint, body []byte) (*Request, error) {
	r := &Request{Endpoint: e}
	if err := ParseInto(r, e, body); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseInto is ParseRequest into a caller-owned Request, which is reset.
func ParseInto(r *Request, e Endpoint, body []byte) error {
	return parseInto(r, e, body, (*Request).decodeFast)
}

// parseInto takes the decoder as a parameter so tests can run the
// reference decoder through the same checks.
func parseInto(r *Request, e Endpoint, body []byte, decode func(*Request, []byte) error) error {
	// Keep the slices' storage: the gateway reuses Requests.
	texts, msgs := r.Texts[:0], r.Messages[:0]
	*r = Request{Endpoint: e, Texts: texts, Messages: msgs}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return BadRequest("invalid_json", "the request body must be a JSON object", "")
	}
	if err := decode(r, body); err != nil {
		return err
	}
	if r.ambiguous != "" {
		return BadRequest("ambiguous_field", "the body has a key that differs from "+r.ambiguous+" only by case", r.ambiguous)
	}
	if r.Model == "" {
		return BadRequest("missing_model", "you must provide a model parameter", "model")
	}
	if r.MaxTokens != nil && (*r.MaxTokens < 0 || *r.MaxTokens > MaxTokensLimit) {
		return BadRequest("invalid_value", "max_tokens is out of range", "max_tokens")
	}
	if r.MaxCompletionTokens != nil && (*r.MaxCompletionTokens < 0 || *r.MaxCompletionTokens > MaxTokensLimit) {
		return BadRequest("invalid_value", "max_completion_tokens is out of range", "max_completion_tokens")
	}
	if r.N != nil && (*r.N < 1 || *r.N > 128) {
		return BadRequest("invalid_value", "n must be between 1 and 128", "n")
	}
	switch e {
	case ChatCompletions:
		if len(r.Messages) == 0 {
			return BadRequest("missing_messages", "messages must be a non-empty array", "messages")
		}
		if len(r.Messages) > MaxMessages {
			return BadRequest("too_many_messages", fmt.Sprintf("at most %d messages", MaxMessages), "messages")
		}
		for i := range r.Messages {
			if err := r.addContent(i); err != nil {
				return err
			}
			if err := r.addMessageExtras(i); err != nil {
				return err
			}
		}
		if err := r.addTools(); err != nil {
			return err
		}
	case Completions:
		if r.Stream == false && r.StreamOptions != nil {
			r.StreamOptions = nil
		}
		if err := r.addStrings(r.Prompt, "prompt"); err != nil {
			return err
		}
	case Embeddings:
		if r.Stream {
			return BadRequest("invalid_value", "embeddings cannot be streamed", "stream")
		}
		if len(r.Input) == 0 {
			return BadRequest("missing_input", "you must provide an input parameter", "input")
		}
		if err := r.addStrings(r.Input, "input"); err != nil {
			return err
		}
	}
	return nil
}

func jsonReason(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return e.Error() + " at offset " + strconv.FormatInt(e.Offset, 10)
	case *json.UnmarshalTypeError:
		return "field " + e.Field + " has the wrong type"
	}
	return err.Error()
}

func (r *Request) addContent(i int) error {
	m := &r.Messages[i]
	c := bytes.TrimSpace(m.Content)
	switch {
	case len(c) == 0 || string(c) == "null":
	case c[0] == '"':
		raw, esc := m.contentRaw, m.contentEsc
		if !m.contentScanned { // decoded by the reference path
			sc := scanner{b: c}
			var err error
			raw, esc, err = sc.str()
			if err != nil || sc.i != len(c) {
				return BadRequest("invalid_value", "content must be a string or an array of parts", contentParam(i))
			}
		}
		r.Texts = append(r.Texts, Text{Value: text(raw, esc), Message: i, Part: -1, Item: -1})
	case c[0] == '[':
		var parts []map[string]json.RawMessage
		if err := json.Unmarshal(c, &parts); err != nil {
			return BadRequest("invalid_value", "content must be a string or an array of parts", contentParam(i))
		}
		if len(parts) > MaxContentParts {
			return BadRequest("invalid_value", fmt.Sprintf("at most %d content parts", MaxContentParts), contentParam(i))
		}
		for j, p := range parts {
			var typ, text, refusal string
			if field(p, "type", &typ) != nil || field(p, "text", &text) != nil || field(p, "refusal", &refusal) != nil {
				return BadRequest("invalid_value", "content parts need a string type and text", contentParam(i))
			}
			r.Variants = r.Variants || hasVariant(p, partKeys)
			// Every part's text is read: typed text, input_text or
			// output_text, untyped, or of a type the gateway does not
			// know (an upstream may still read its text).
			if _, ok := p["text"]; ok || typ == "text" {
				r.Texts = append(r.Texts, Text{Value: text, Message: i, Part: j, Item: -1})
			}
			if _, ok := p["refusal"]; ok {
				r.Texts = append(r.Texts, Text{Value: refusal, Message: i, Part: j, Item: -1, Kind: KindRefusalPart})
			}
		}
	default:
		return BadRequest("invalid_value", "content must be a string or an array of parts", contentParam(i))
	}
	return nil
}

// contentParam names message i's content in an error; built only when
// there is an error to report.
func contentParam(i int) string {
	return "messages[" + strconv.Itoa(i) + "].content"
}

// addStrings reads a prompt/input that is a string, an array of strings, an
// array of tokens or an array of token arrays.
func (r *Request) addStrings(raw json.RawMessage, param string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	bad := BadRequest("invalid_value", param+" must be a string, an array of strings or an array of tokens", param)
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return bad
		}
		r.Texts = append(r.Texts, Text{Value: s, Message: -1, Part: -1, Item: -1})
		return nil
	case '[':
	default:
		return bad
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return bad
	}
	if len(items) > MaxPromptStrings {
		return BadRequest("invalid_value", fmt.Sprintf("at most %d %s entries", MaxPromptStrings, param), param)
	}
	for j, it := range items {
		switch {
		case len(it) > 0 && it[0] == '"':
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return bad
			}
			r.Texts = append(r.Texts, Text{Value: s, Message: -1, Part: -1, Item: j})
		case len(it) > 0 && it[0] == '[':
			var toks []int64
			if err := json.Unmarshal(it, &toks); err != nil {
				return bad
			}
			r.TokenInputs += len(toks)
		case len(it) > 0 && (it[0] == '-' || (it[0] >= '0' && it[0] <= '9')):
			r.TokenInputs++
		default:
			return bad
		}
	}
	return nil
}

// WantsUsage reports whether the client asked for a usage chunk in a stream.
func (r *Request) WantsUsage() bool { return r.StreamOptions != nil && r.StreamOptions.IncludeUsage }

// CompletionBudget is the most completion tokens the request may produce
// (max_completion_tokens, else max_tokens, else def), times n.
func (r *Request) CompletionBudget(def int64) int64 {
	v := def
	if r.MaxCompletionTokens != nil {
		v = *r.MaxCompletionTokens
	} else if r.MaxTokens != nil {
		v = *r.MaxTokens
	}
	if r.N != nil {
		v *= *r.N
	}
	return v
}

// decode reads the fields by their exact names. encoding/json matches keys
// case-insensitively, while upstream servers (Python, mostly) match them
// exactly; reading {"content":"x","Content":"y"} differently from the
// backend would let a prompt past inspection, so every object the gateway
// reads is taken apart as raw fields first. Duplicate keys resolve to the
// last one, as in Python.
func (r *Request) decodeSlow(body []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return BadRequest("invalid_json", "malformed JSON body: "+jsonReason(err), "")
	}
	if err := field(top, "model", &r.Model); err != nil {
		return err
	}
	if err := field(top, "stream", &r.Stream); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		dst  **int64
	}{{"max_tokens", &r.MaxTokens}, {"max_completion_tokens", &r.MaxCompletionTokens}, {"n", &r.N}} {
		if err := field(top, f.name, f.dst); err != nil {
			return err
		}
	}
	if raw, ok := top["stream_options"]; ok && !isNull(raw) {
		var so map[string]json.RawMessage
		if err := json.Unmarshal(raw, &so); err != nil {
			return BadRequest("invalid_value", "stream_options must be an object", "stream_options")
		}
		r.StreamOptions = &StreamOptions{}
		if err := field(so, "include_usage", &r.StreamOptions.IncludeUsage); err != nil {
			return err
		}
	}
	r.Prompt, r.Input = top["prompt"], top["input"]
	r.Tools, r.Functions, r.ResponseFormat = top["tools"], top["functions"], top["response_format"]
	for k := range top {
		if a := ambiguousTop(k); a != "" {
			r.ambiguous = a
		}
	}
	raw, ok := top["messages"]
	if !ok || isNull(raw) {
		return nil
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return BadRequest("invalid_value", "messages must be an array of objects", "messages")
	}
	if len(msgs) > MaxMessages {
		return BadRequest("too_many_messages", fmt.Sprintf("at most %d messages", MaxMessages), "messages")
	}
	r.Messages = make([]Message, len(msgs))
	for i, m := range msgs {
		dst := &r.Messages[i]
		for _, f := range []struct {
			name string
			dst  *string
		}{{"role", &dst.Role}, {"name", &dst.Name}, {"tool_call_id", &dst.ToolCallID}, {"refusal", &dst.Refusal}} {
			if err := field(m, f.name, f.dst); err != nil {
				err.Param = "messages[" + strconv.Itoa(i) + "]." + f.name
				return err
			}
		}
		dst.Content, dst.ToolCalls, dst.FunctionCall = m["content"], m["tool_calls"], m["function_call"]
		r.Variants = r.Variants || hasVariant(m, messageKeys)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// field decodes top[name] into dst when present and not null.
func field[T any](top map[string]json.RawMessage, name string, dst *T) *Error {
	raw, ok := top[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return BadRequest("invalid_value", name+" has the wrong type", name)
	}
	return nil
}
