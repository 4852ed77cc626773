// Package chatwire holds the OpenAI chat-completions wire shapes that the
// inbound translators (l7/translate/messages, l7/translate/responses)
// write and read: chat completions is the gateway's pivot, so a client
// API's request becomes a chat request that every later stage (inspection,
// counting, limits, routing) reads as it reads a native one, and the
// upstream's chat response or stream comes back to the client's API.
//
// Only the fields the translators carry are declared. Requests are
// written with encoding/json (they are built once per request); chunks
// are decoded one per streamed event, into a reused value.
package chatwire

import (
	"encoding/json"
	"errors"
)

// Request is the chat-completions request a translator writes.
type Request struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
}

// Message is one chat message. Content is a string, a JSON string as it
// came (json.RawMessage), a []Part, or nil (an
// assistant message that only calls tools).
type Message struct {
	Role       string     `json:"role"`
	Content    any        `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Part is a content part: text or image_url.
type Part struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image part's location: an https URL or a data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Tool is a function tool.
type Tool struct {
	Type     string   `json:"type"`
	Function Function `json:"function"`
}

// Function is a tool's function definition.
type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is an assistant's call of a tool; in a streamed delta Index
// says which call a fragment continues.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function CallFunction `json:"function"`
}

// CallFunction is the function a call names and its arguments (a JSON
// text, possibly a fragment of one in a stream).
type CallFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Usage is the chat usage object with the details the client APIs report.
type Usage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details,omitempty"`
}

// Cached is the prompt tokens read from the upstream's cache.
func (u *Usage) Cached() int64 {
	if u == nil || u.PromptTokensDetails == nil {
		return 0
	}
	return min(max(u.PromptTokensDetails.CachedTokens, 0), u.PromptTokens)
}

// Reasoning is the completion tokens spent reasoning.
func (u *Usage) Reasoning() int64 {
	if u == nil || u.CompletionTokensDetails == nil {
		return 0
	}
	return max(u.CompletionTokensDetails.ReasoningTokens, 0)
}

// Completion is a whole chat-completions response.
type Completion struct {
	ID      string   `json:"id"`
	Model   string   `json:"model"`
	Created int64    `json:"created"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage"`
}

// Choice is one choice of a whole response. StopReason is vLLM's and
// SGLang's extension naming the stop string that ended the choice.
type Choice struct {
	Index        int             `json:"index"`
	Message      Delta           `json:"message"`
	FinishReason string          `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason"`
}

// Delta is a message or a streamed message fragment.
type Delta struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []ToolCall `json:"tool_calls"`
}

// Chunk is one streamed chunk.
type Chunk struct {
	ID      string        `json:"id"`
	Model   string        `json:"model"`
	Created int64         `json:"created"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage"`
	// Error is an error event in the stream (data: {"error":{...}}), as
	// OpenAI-compatible servers send one when they fail mid-stream.
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// ChunkChoice is one choice of a chunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason"`
}

// ErrNoChoice is a response without a choice to translate.
var ErrNoChoice = errors.New("the upstream response has no choice")

// ParseCompletion decodes a whole chat response.
func ParseCompletion(b []byte) (*Completion, error) {
	var c Completion
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, errors.New("the upstream response is not a chat completion: " + err.Error())
	}
	if len(c.Choices) == 0 {
		return nil, ErrNoChoice
	}
	return &c, nil
}

// ParseChunk decodes one streamed chunk into c, reusing its storage.
func ParseChunk(b []byte, c *Chunk) error {
	// encoding/json decodes into a reused element without zeroing it:
	// a field absent from this chunk would keep the last chunk's value.
	choices := c.Choices[:cap(c.Choices)]
	clear(choices)
	*c = Chunk{Choices: choices[:0]}
	if err := json.Unmarshal(b, c); err != nil {
		return errors.New("the upstream chunk is not a chat completion chunk: " + err.Error())
	}
	if c.Error != nil {
		msg := c.Error.Message
		if msg == "" {
			msg = "the upstream failed mid-stream"
		}
		return &UpstreamError{Message: msg}
	}
	return nil
}

// UpstreamError is an error event the upstream sent in its stream; the
// client gets it as its API's error event.
type UpstreamError struct{ Message string }

func (e *UpstreamError) Error() string { return "the upstream reported an error: " + e.Message }

// StopString is the stop string a choice ended on, when the upstream
// names it (vLLM's stop_reason is the string, or a token id, or null).
func StopString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// ErrorMessage takes the message out of an OpenAI-shaped error body
// ({"error":{"message":...}}), or "" when it has none.
func ErrorMessage(b []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	if e.Error.Message != "" {
		return e.Error.Message
	}
	return e.Message
}

// RequestError is a client request a translator refuses: the gateway
// answers it 400 in the client API's error shape. Param names the field.
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

// Bad returns a RequestError.
func Bad(param, msg string) *RequestError { return &RequestError{Param: param, Message: msg} }

// Text returns a pointer to s, for Delta and Message fields.
func Text(s string) *string { return &s }
