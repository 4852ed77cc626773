// Package anthropicout translates chat completions to Anthropic's Messages
// API (POST /v1/messages, x-api-key, anthropic-version) and its answers and
// SSE events back (see l7/translate/outbound).
//
// System and developer messages become the top-level system text; tool
// messages become tool_result blocks of a user turn (consecutive ones
// merged into one turn, as Anthropic wants results together); assistant
// tool_calls become tool_use blocks. max_tokens is mandatory in the Messages
// API: the client's bound, else the provider's configured default.
// response_format json_schema or json_object becomes one forced tool with
// the client's schema, whose input comes back as the JSON message text
// (structured.go).
package anthropicout

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// DefaultVersion is the anthropic-version sent when none is configured.
const DefaultVersion = "2023-06-01"

// DefaultMaxTokens is max_tokens when neither client nor policy sets one.
const DefaultMaxTokens = 4096

// Translator speaks the Messages API.
type Translator struct {
	BaseURL   string // e.g. https://api.anthropic.com (no /v1)
	Key       *outbound.Secret
	Version   string
	MaxTokens int64
}

// ProviderName implements outbound.Translator.
func (*Translator) ProviderName() string { return "anthropic" }

// Wire types of the Messages API.
type request struct {
	Model         string      `json:"model"`
	MaxTokens     int64       `json:"max_tokens"`
	System        string      `json:"system,omitempty"`
	Messages      []message   `json:"messages"`
	Tools         []tool      `json:"tools,omitempty"`
	ToolChoice    *toolChoice `json:"tool_choice,omitempty"`
	StopSequences []string    `json:"stop_sequences,omitempty"`
	Temperature   *float64    `json:"temperature,omitempty"`
	TopP          *float64    `json:"top_p,omitempty"`
	Stream        bool        `json:"stream,omitempty"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata,omitempty"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *imageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   string          `json:"content,omitempty"`
	Thinking  string          `json:"thinking,omitempty"`
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

type response struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Model        string  `json:"model"`
	Content      []block `json:"content"`
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        usage   `json:"usage"`
}

type usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// Body is the Messages request for r (exported for tests and fuzzing).
func (t *Translator) Body(r *chatwire.Request) ([]byte, error) {
	ar := request{Model: r.Model, MaxTokens: r.Limit(), StopSequences: r.Stop, Temperature: r.Temperature, TopP: r.TopP, Stream: r.Stream}
	if ar.MaxTokens <= 0 {
		ar.MaxTokens = t.MaxTokens
		if ar.MaxTokens <= 0 {
			ar.MaxTokens = DefaultMaxTokens
		}
	}
	if r.User != "" {
		ar.Metadata = &struct {
			UserID string `json:"user_id"`
		}{r.User}
	}
	var system []string
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case "system", "developer":
			if s := m.Content.JoinedText(); s != "" {
				system = append(system, s)
			}
		case "user":
			bs, err := contentBlocks(&m.Content)
			if err != nil {
				return nil, err
			}
			ar.Messages = appendTurn(ar.Messages, "user", bs...)
		case "assistant":
			var bs []block
			m.Content.Texts(func(s string) { bs = append(bs, block{Type: "text", Text: s}) })
			for _, tc := range m.ToolCalls {
				in, err := outbound.CallInput(tc.Function.Arguments)
				if err != nil {
					return nil, err
				}
				bs = append(bs, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: in})
			}
			if len(bs) == 0 {
				continue // an empty assistant turn: Anthropic refuses empty content
			}
			ar.Messages = appendTurn(ar.Messages, "assistant", bs...)
		case "tool":
			if m.ToolCallID == "" {
				return nil, outbound.Invalid("a tool message needs tool_call_id")
			}
			ar.Messages = appendTurn(ar.Messages, "user", block{Type: "tool_result", ToolUseID: m.ToolCallID, Content: m.Content.JoinedText()})
		default:
			return nil, outbound.Invalid("unknown message role " + outbound.Clip(m.Role))
		}
	}
	if len(ar.Messages) == 0 {
		return nil, outbound.Invalid("the request has no user or assistant message")
	}
	ar.System = strings.Join(system, "\n\n")
	for _, tl := range r.Tools {
		if tl.Type != "function" && tl.Type != "" {
			return nil, outbound.Invalid("only function tools can be sent to this provider")
		}
		s := tl.Function.Parameters
		if len(bytes.TrimSpace(s)) == 0 || bytes.Equal(bytes.TrimSpace(s), []byte("null")) {
			s = emptySchema
		}
		ar.Tools = append(ar.Tools, tool{Name: tl.Function.Name, Description: tl.Function.Description, InputSchema: s})
	}
	tc, err := r.ParseToolChoice()
	if err != nil {
		return nil, outbound.Invalid(err.Error())
	}
	if len(ar.Tools) > 0 {
		switch tc.Mode {
		case "none":
			ar.ToolChoice = &toolChoice{Type: "none"}
		case "required":
			ar.ToolChoice = &toolChoice{Type: "any"}
		case "function":
			ar.ToolChoice = &toolChoice{Type: "tool", Name: tc.Name}
		}
	}
	if err := applyStructured(&ar, r); err != nil {
		return nil, err
	}
	return json.Marshal(&ar)
}

// appendTurn adds blocks to the last turn when it has the same role (the
// API wants user and assistant turns to alternate), else a new turn.
func appendTurn(ms []message, role string, bs ...block) []message {
	if n := len(ms); n > 0 && ms[n-1].Role == role {
		ms[n-1].Content = append(ms[n-1].Content, bs...)
		return ms
	}
	return append(ms, message{Role: role, Content: bs})
}

func contentBlocks(c *chatwire.Content) ([]block, error) {
	var bs []block
	err := outbound.UserParts(c, func(s string) { bs = append(bs, block{Type: "text", Text: s}) }, func(img outbound.Image) error {
		if img.URL != "" {
			bs = append(bs, block{Type: "image", Source: &imageSource{Type: "url", URL: img.URL}})
		} else {
			bs = append(bs, block{Type: "image", Source: &imageSource{Type: "base64", MediaType: img.MediaType, Data: img.Data}})
		}
		return nil
	})
	return bs, err
}

// NewRequest implements outbound.Translator.
func (t *Translator) NewRequest(ctx context.Context, r *chatwire.Request) (*http.Request, error) {
	b, err := t.Body(r)
	if err != nil {
		return nil, err
	}
	key, err := t.Key.String()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(t.BaseURL, "/")+"/v1/messages", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	v := t.Version
	if v == "" {
		v = DefaultVersion
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", v)
	if r.Stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	return req, nil
}

// FinishReason maps a stop_reason.
func FinishReason(s string) string {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return chatwire.FinishLength
	case "tool_use":
		return chatwire.FinishToolCalls
	case "refusal":
		return chatwire.FinishContentFilter
	}
	return chatwire.FinishStop // end_turn, stop_sequence, pause_turn
}

func (u *usage) chat() *chatwire.Usage {
	return chatwire.NewUsage(u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens, u.OutputTokens, u.CacheReadInputTokens, 0)
}

// Response implements outbound.Translator.
func (t *Translator) Response(body []byte, r *chatwire.Request) (*chatwire.Response, error) {
	var ar response
	if err := json.Unmarshal(body, &ar); err != nil {
		return nil, err
	}
	var calls []chatwire.ToolCall
	var text, thinking strings.Builder
	structured := isStructured(r)
	finish := FinishReason(ar.StopReason)
	for _, b := range ar.Content {
		if structured && b.Type == "tool_use" && b.Name == StructuredTool {
			// The forced schema tool's input is the JSON answer.
			text.Write(b.Input)
			if finish == chatwire.FinishToolCalls {
				finish = chatwire.FinishStop
			}
			continue
		}
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "thinking":
			thinking.WriteString(b.Thinking)
		case "tool_use":
			calls = append(calls, outbound.ToolCall(b.ID, b.Name, b.Input))
		}
	}
	msg := outbound.Answer(text.String(), thinking.String(), calls)
	return &chatwire.Response{ID: ar.ID, Model: ar.Model, Choices: []chatwire.Choice{{Message: msg, FinishReason: finish}},
		Usage: ar.Usage.chat()}, nil
}

// Error implements outbound.Translator: {"type":"error","error":{"type","message"}}.
func (t *Translator) Error(status int, body []byte) *openai.Error {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return outbound.MapError(status, e.Error.Message, e.Error.Type)
}
