package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Usage is Anthropic's usage object.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// FromUsage maps chat usage: Anthropic counts cached prompt tokens apart
// from input_tokens.
func FromUsage(u *chatwire.Usage) Usage {
	if u == nil {
		return Usage{}
	}
	cached := u.Cached()
	return Usage{InputTokens: u.PromptTokens - cached, OutputTokens: u.CompletionTokens, CacheReadInputTokens: cached}
}

// ContentBlock is a response content block: text or tool_use.
type ContentBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

// Message is the Messages API's response object.
type Message struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []ContentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        Usage          `json:"usage"`
}

// StopReason maps a chat finish reason (and the stop string, when the
// upstream names one of the request's stop sequences).
func StopReason(finish string, stopString string, named bool, stops []string) (reason string, sequence *string) {
	switch finish {
	case "length":
		return "max_tokens", nil
	case "tool_calls", "function_call":
		return "tool_use", nil
	case "content_filter":
		return "refusal", nil
	}
	if named {
		for _, s := range stops {
			if s == stopString {
				return "stop_sequence", &s
			}
		}
	}
	return "end_turn", nil
}

// messageID makes a Messages id from the upstream's completion id.
func messageID(id string) string {
	id = strings.TrimPrefix(id, "chatcmpl-")
	if id == "" {
		id = "gateway"
	}
	return "msg_" + id
}

// FromChat translates a whole chat-completions response into a Message
// body. Tool arguments that are not a JSON object are an upstream fault.
func FromChat(body []byte, info Info) ([]byte, error) {
	c, err := chatwire.ParseResponse(body)
	if err != nil {
		return nil, err
	}
	ch := &c.Choices[0]
	m := Message{ID: messageID(c.ID), Type: "message", Role: "assistant", Model: c.Model, Content: []ContentBlock{}, Usage: FromUsage(c.Usage)}
	if m.Model == "" {
		m.Model = info.Model
	}
	text := ""
	if ch.Message.Content != nil {
		text = *ch.Message.Content
	}
	if text == "" && ch.Message.Refusal != nil {
		text = *ch.Message.Refusal
	}
	if text != "" {
		m.Content = append(m.Content, ContentBlock{Type: "text", Text: &text})
	}
	for _, tc := range ch.Message.ToolCalls {
		in, err := toolInput(tc.Function.Arguments)
		if err != nil {
			return nil, err
		}
		m.Content = append(m.Content, ContentBlock{Type: "tool_use", ID: toolID(tc.ID), Name: tc.Function.Name, Input: in})
	}
	stop, named := chatwire.StopString(ch.StopReason)
	reason, seq := StopReason(ch.FinishReason, stop, named, info.StopSequences)
	if len(ch.Message.ToolCalls) > 0 && reason == "end_turn" {
		reason = "tool_use" // some servers end a tool call with "stop"
	}
	m.StopReason, m.StopSequence = &reason, seq
	return json.Marshal(&m)
}

// toolID keeps the upstream's call id: the client sends it back in its
// tool_result and the chat upstream must find it again.
func toolID(id string) string {
	if id == "" {
		return "toolu_gateway"
	}
	return id
}

var errToolArgs = errors.New("the upstream returned tool arguments that are not a JSON object")

func toolInput(args string) (json.RawMessage, error) {
	a := bytes.TrimSpace([]byte(args))
	if len(a) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if a[0] != '{' || !json.Valid(a) {
		return nil, errToolArgs
	}
	return a, nil
}

// CountTokens is the count_tokens answer.
func CountTokens(n int64) []byte {
	return append(strconv.AppendInt([]byte(`{"input_tokens":`), n, 10), '}')
}

// ErrorType is Anthropic's error type for an HTTP status.
func ErrorType(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusRequestTimeout, http.StatusUnprocessableEntity:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 400 && status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// ErrorBody is Anthropic's error object for status and message.
func ErrorBody(status int, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": ErrorType(status), "message": msg}})
	return b
}

// UpstreamError re-shapes an upstream's OpenAI-shaped error body.
func UpstreamError(status int, body []byte) []byte {
	msg := chatwire.ErrorMessage(body)
	if msg == "" {
		msg = "the upstream answered " + strconv.Itoa(status)
	}
	return ErrorBody(status, msg)
}
