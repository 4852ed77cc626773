// Package messages translates Anthropic's Messages API (POST /v1/messages
// and /v1/messages/count_tokens) to and from the gateway's pivot, OpenAI
// chat completions (l7/translate/chatwire): the request into a chat
// request, the chat response into a Message, and the chat stream, chunk by
// chunk, into Anthropic's server-sent events.
//
// Mapping. The system prompt (a string or text blocks) becomes the first
// system message. A user message's tool_result blocks become tool messages
// (placed first, as chat requires them right after the assistant's calls),
// its text and image blocks one user message; an image's base64 source
// becomes a data: URL and a url source stays a URL. An assistant's
// tool_use blocks become tool_calls with the input as the arguments' JSON
// text. tools become function tools, tool_choice auto/any/tool/none
// becomes auto/required/the named function/none (disable_parallel_tool_use
// as parallel_tool_calls false), stop_sequences become stop, and
// output_config's (or the older output_format's) json_schema format becomes
// response_format json_schema and its effort reasoning_effort. Fields chat
// completions cannot express (top_k, extended thinking, documents, server
// tools, containers) are refused 400 by name rather than dropped: the
// client would otherwise get an answer to a request it did not make.
// metadata, service_tier, speed, inference_geo, diagnostics and
// cache_control are hints to Anthropic's service with no effect on the
// answer and are ignored.
//
// Back, finish reasons map stop→end_turn (stop_sequence when the upstream
// names the stop string, as vLLM does), length→max_tokens,
// tool_calls→tool_use, content_filter→refusal; usage maps prompt tokens
// less cached ones to input_tokens and cached ones to
// cache_read_input_tokens.
package messages

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Bounds on what a request may hold (the body is already bounded by the
// gateway's size limit; these bound the work per element).
const (
	maxMessages = 4096
	maxBlocks   = 256
	maxTools    = 512
	maxStops    = 16
)

// Info is what the gateway keeps of a translated request.
type Info struct {
	Model         string
	Stream        bool
	StopSequences []string
}

type request struct {
	Model         string          `json:"model"`
	MaxTokens     *int64          `json:"max_tokens"`
	Messages      []message       `json:"messages"`
	System        json.RawMessage `json:"system"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Tools         []tool          `json:"tools"`
	ToolChoice    *toolChoice     `json:"tool_choice"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	OutputFormat *outputFormat `json:"output_format"`
	OutputConfig *struct {
		Effort *string       `json:"effort"`
		Format *outputFormat `json:"format"`
	} `json:"output_config"`
	Thinking *struct {
		Type string `json:"type"`
	} `json:"thinking"`
}

// knownKeys are the top-level keys the translator reads or knowingly
// ignores; any other is refused by name.
var knownKeys = map[string]bool{
	"model": true, "max_tokens": true, "messages": true, "system": true, "stop_sequences": true, "stream": true,
	"temperature": true, "top_p": true, "tools": true, "tool_choice": true, "metadata": true, "output_format": true,
	"thinking": true, "service_tier": true, "output_config": true, "cache_control": true, "inference_geo": true,
	"speed": true, "diagnostics": true,
}

type outputFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type block struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Source *struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
		URL       string `json:"url"`
	} `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// ToChat translates a Messages API request body into a chat-completions
// request body. countOnly is the count_tokens form, which has no
// max_tokens. A refused request's error is a *chatwire.RequestError.
func ToChat(body []byte, countOnly bool) ([]byte, Info, error) {
	var r request
	if err := chatwire.DecodeRequest(body, &r, knownKeys, "field"); err != nil {
		return nil, Info{}, err
	}
	if r.Model == "" {
		return nil, Info{}, chatwire.Bad("model", "Field required")
	}
	if r.MaxTokens == nil && !countOnly {
		return nil, Info{}, chatwire.Bad("max_tokens", "Field required")
	}
	if r.MaxTokens != nil && *r.MaxTokens < 1 {
		return nil, Info{}, chatwire.Bad("max_tokens", "must be at least 1")
	}
	if len(r.Messages) == 0 {
		return nil, Info{}, chatwire.Bad("messages", "at least one message is required")
	}
	if len(r.Messages) > maxMessages {
		return nil, Info{}, chatwire.Bad("messages", "too many messages")
	}
	if len(r.StopSequences) > maxStops {
		return nil, Info{}, chatwire.Bad("stop_sequences", "at most 16 stop sequences")
	}
	if r.Thinking != nil && r.Thinking.Type != "disabled" {
		return nil, Info{}, chatwire.Bad("thinking", "extended thinking cannot be translated to the upstream's API; leave it out or set type disabled")
	}
	out := chatwire.Request{Model: r.Model, Stream: r.Stream && !countOnly, Temperature: r.Temperature, TopP: r.TopP}
	if !countOnly {
		out.MaxTokens = r.MaxTokens
		out.Stop = r.StopSequences
	}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	if err := addSystem(&out, r.System); err != nil {
		return nil, Info{}, err
	}
	for i := range r.Messages {
		if err := addMessage(&out, &r.Messages[i], i); err != nil {
			return nil, Info{}, err
		}
	}
	if err := addTools(&out, &r); err != nil {
		return nil, Info{}, err
	}
	f, fparam := r.OutputFormat, "output_format"
	if oc := r.OutputConfig; oc != nil {
		if oc.Format != nil {
			f, fparam = oc.Format, "output_config.format"
		}
		if oc.Effort != nil {
			switch e := *oc.Effort; e {
			case "low", "medium", "high":
				out.ReasoningEffort = e
			case "xhigh", "max":
				out.ReasoningEffort = "high" // the most chat's reasoning_effort says
			default:
				return nil, Info{}, chatwire.Bad("output_config.effort", "must be low, medium, high, xhigh or max")
			}
		}
	}
	if f != nil {
		if f.Type != "json_schema" || len(f.Schema) == 0 || f.Schema[0] != '{' {
			return nil, Info{}, chatwire.Bad(fparam, "only type json_schema with an object schema is supported")
		}
		strict := true
		out.ResponseFormat = &chatwire.ResponseFormat{Type: "json_schema",
			JSONSchema: &chatwire.JSONSchema{Name: "output", Schema: f.Schema, Strict: &strict}}
	}
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, Info{}, chatwire.Bad("", "the request could not be translated: "+err.Error())
	}
	return b, Info{Model: r.Model, Stream: out.Stream, StopSequences: r.StopSequences}, nil
}

// addSystem puts the system prompt (a string or text blocks) first.
func addSystem(out *chatwire.Request, raw json.RawMessage) error {
	if chatwire.IsNull(raw) {
		return nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return chatwire.Bad("system", "invalid string")
		}
	} else {
		var blocks []block
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return chatwire.Bad("system", "must be a string or a list of text blocks")
		}
		var parts []string
		for _, b := range blocks {
			if b.Type != "text" {
				return chatwire.Bad("system", "only text blocks are allowed in a system prompt")
			}
			parts = append(parts, b.Text)
		}
		s = strings.Join(parts, "\n\n")
	}
	out.Messages = append(out.Messages, chatwire.Message{Role: "system", Content: chatwire.TextContent(s)})
	return nil
}

func param(i int, rest string) string { return "messages." + itoa(i) + rest }

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// addMessage translates one message; a user message may become several
// chat messages (its tool results first).
func addMessage(out *chatwire.Request, m *message, i int) error {
	if m.Role != "user" && m.Role != "assistant" {
		return chatwire.Bad(param(i, ".role"), "must be user or assistant")
	}
	if chatwire.IsNull(m.Content) {
		return chatwire.Bad(param(i, ".content"), "Field required")
	}
	if m.Content[0] == '"' {
		// A string goes on as the JSON text it came as (already checked
		// by the decoder): decoding and encoding the largest value of the
		// request again would cost more than the rest of the translation.
		out.Messages = append(out.Messages, chatwire.Message{Role: m.Role, Content: chatwire.RawText(m.Content)})
		return nil
	}
	var blocks []block
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return chatwire.Bad(param(i, ".content"), "must be a string or a list of content blocks")
	}
	if len(blocks) > maxBlocks {
		return chatwire.Bad(param(i, ".content"), "too many content blocks")
	}
	var parts []chatwire.Part
	var calls []chatwire.ToolCall
	for j := range blocks {
		b := &blocks[j]
		p := param(i, ".content."+itoa(j))
		switch b.Type {
		case "text":
			parts = append(parts, chatwire.Part{Type: "text", Text: b.Text})
		case "image":
			if m.Role != "user" {
				return chatwire.Bad(p, "images are only allowed in user messages")
			}
			u, err := imageURL(b, p)
			if err != nil {
				return err
			}
			parts = append(parts, chatwire.Part{Type: "image_url", ImageURL: &chatwire.ImageURL{URL: u}})
		case "tool_use":
			if m.Role != "assistant" {
				return chatwire.Bad(p, "tool_use blocks are only allowed in assistant messages")
			}
			if b.ID == "" || b.Name == "" {
				return chatwire.Bad(p, "tool_use needs id and name")
			}
			args := "{}"
			if !chatwire.IsNull(b.Input) {
				in := bytes.TrimSpace(b.Input)
				if in[0] != '{' {
					return chatwire.Bad(p+".input", "must be an object")
				}
				args = string(in)
			}
			calls = append(calls, chatwire.ToolCall{ID: b.ID, Type: "function", Function: chatwire.FunctionCall{Name: b.Name, Arguments: args}})
		case "tool_result":
			if m.Role != "user" {
				return chatwire.Bad(p, "tool_result blocks are only allowed in user messages")
			}
			if b.ToolUseID == "" {
				return chatwire.Bad(p+".tool_use_id", "Field required")
			}
			text, err := resultText(b.Content, p+".content")
			if err != nil {
				return err
			}
			if b.IsError {
				// Chat has no error flag on a tool message: the model is
				// told in the text, as it would read Anthropic's flag.
				text = "Error: " + text
			}
			// Tool results go before the rest of the user's content.
			out.Messages = append(out.Messages, chatwire.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: chatwire.TextContent(text)})
		case "thinking", "redacted_thinking":
			// An earlier turn's reasoning: chat has no field for it and
			// an upstream would not read it.
		default:
			return chatwire.Bad(p+".type", "content block type "+quote(b.Type)+" cannot be translated")
		}
	}
	switch {
	case m.Role == "assistant":
		msg := chatwire.Message{Role: "assistant", ToolCalls: calls}
		if text := joinText(parts); text != "" || len(calls) == 0 {
			msg.Content = chatwire.TextContent(text)
		}
		out.Messages = append(out.Messages, msg)
	case len(parts) > 0:
		out.Messages = append(out.Messages, chatwire.Message{Role: "user", Content: chatwire.PartsContent(parts)})
	}
	return nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func joinText(parts []chatwire.Part) string {
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(p.Text)
	}
	return sb.String()
}

var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

func imageURL(b *block, p string) (string, error) {
	s := b.Source
	if s == nil {
		return "", chatwire.Bad(p+".source", "Field required")
	}
	switch s.Type {
	case "base64":
		if !imageTypes[s.MediaType] {
			return "", chatwire.Bad(p+".source.media_type", "must be image/jpeg, image/png, image/gif or image/webp")
		}
		if s.Data == "" {
			return "", chatwire.Bad(p+".source.data", "Field required")
		}
		return "data:" + s.MediaType + ";base64," + s.Data, nil
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return "", chatwire.Bad(p+".source.url", "must be an http(s) URL")
		}
		return s.URL, nil
	}
	return "", chatwire.Bad(p+".source.type", "must be base64 or url")
}

// resultText is a tool_result's content as text: a string, or its text
// blocks joined. An image in a tool result has no place in a chat tool
// message and is refused.
func resultText(raw json.RawMessage, p string) (string, error) {
	if chatwire.IsNull(raw) {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", chatwire.Bad(p, "invalid string")
		}
		return s, nil
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", chatwire.Bad(p, "must be a string or a list of text blocks")
	}
	var sb strings.Builder
	for _, b := range blocks {
		if b.Type != "text" {
			return "", chatwire.Bad(p, "only text blocks can be translated in a tool result")
		}
		sb.WriteString(b.Text)
	}
	return sb.String(), nil
}

func addTools(out *chatwire.Request, r *request) error {
	if len(r.Tools) > maxTools {
		return chatwire.Bad("tools", "too many tools")
	}
	for i, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return chatwire.Bad("tools."+itoa(i)+".type", "server tool "+quote(t.Type)+" cannot be translated")
		}
		if t.Name == "" {
			return chatwire.Bad("tools."+itoa(i)+".name", "Field required")
		}
		schema := bytes.TrimSpace(t.InputSchema)
		if len(schema) == 0 || schema[0] != '{' {
			return chatwire.Bad("tools."+itoa(i)+".input_schema", "must be a JSON Schema object")
		}
		out.Tools = append(out.Tools, chatwire.Tool{Type: "function", Function: chatwire.Function{
			Name: t.Name, Description: t.Description, Parameters: schema}})
	}
	tc := r.ToolChoice
	if tc == nil {
		return nil
	}
	switch tc.Type {
	case "auto":
		out.ToolChoice = json.RawMessage(`"auto"`)
	case "any":
		out.ToolChoice = json.RawMessage(`"required"`)
	case "none":
		out.ToolChoice = json.RawMessage(`"none"`)
	case "tool":
		if tc.Name == "" {
			return chatwire.Bad("tool_choice.name", "Field required")
		}
		b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		out.ToolChoice = b
	default:
		return chatwire.Bad("tool_choice.type", "must be auto, any, tool or none")
	}
	if tc.DisableParallelToolUse && len(out.Tools) > 0 {
		f := false
		out.ParallelToolCalls = &f
	}
	return nil
}
