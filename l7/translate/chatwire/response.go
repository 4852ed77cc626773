package chatwire

import (
	"encoding/json"
	"errors"
)

// Response is a whole chat completion: what a provider translator writes
// and what an inbound translator reads.
type Response struct {
	ID      string   `json:"id"`
	Object  Object   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`
}

// Object is a response's or chunk's "object": chat.completion or
// chat.completion.chunk. It is read without allocating, since every
// streamed chunk names it and a reader has no use for it.
type Object string

// The objects of chat completions.
const (
	ObjectCompletion Object = "chat.completion"
	ObjectChunk      Object = "chat.completion.chunk"
)

// UnmarshalJSON takes a JSON string (or null), sharing the storage of the
// two names chat completions use.
func (o *Object) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"chat.completion.chunk"`:
		*o = ObjectChunk
		return nil
	case `"chat.completion"`:
		*o = ObjectCompletion
		return nil
	case "null":
		return nil
	}
	var s string
	err := json.Unmarshal(b, &s)
	*o = Object(s)
	return err
}

// Choice is one answer. StopReason is vLLM's and SGLang's extension
// naming the stop string that ended the choice.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason,omitempty"`
}

// ResponseMessage is the assistant's message.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ReasoningContent is the model's visible reasoning, where the
	// provider returns it (the field name vLLM and DeepSeek use).
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// Usage is chat-completions usage with its details.
type Usage struct {
	PromptTokens            int64                    `json:"prompt_tokens"`
	CompletionTokens        int64                    `json:"completion_tokens"`
	TotalTokens             int64                    `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
}

// PromptTokensDetails says how many prompt tokens were cache reads.
type PromptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// CompletionTokensDetails says how many completion tokens were reasoning.
type CompletionTokensDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// NewUsage fills the totals and details (details only when non-zero).
func NewUsage(prompt, completion, cached, reasoning int64) *Usage {
	u := &Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	if cached > 0 {
		u.PromptTokensDetails = &PromptTokensDetails{CachedTokens: cached}
	}
	if reasoning > 0 {
		u.CompletionTokensDetails = &CompletionTokensDetails{ReasoningTokens: reasoning}
	}
	return u
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

// Chunk is one streamed chat-completion chunk.
type Chunk struct {
	ID      string        `json:"id"`
	Object  Object        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
	// Error is an error event in the stream (data: {"error":{...}}), as
	// OpenAI-compatible servers send one when they fail mid-stream.
	Error *ChunkError `json:"error,omitempty"`
}

// ChunkError is a stream's error event.
type ChunkError struct {
	Message string `json:"message"`
}

// ChunkChoice is one choice's delta.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	StopReason   json.RawMessage `json:"stop_reason,omitempty"`
}

// Delta is what a chunk adds to the message.
type Delta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	ToolCalls        []ChunkToolCall `json:"tool_calls,omitempty"`
}

// Text is the text a delta adds to the answer: its content, or a refusal
// where it has none (the inbound APIs carry both as text).
func (d *Delta) Text() string {
	switch {
	case d.Content != nil:
		return *d.Content
	case d.Refusal != nil:
		return *d.Refusal
	}
	return ""
}

// ChunkToolCall is a tool call's first (id, name) or later (arguments)
// piece. Index says which of the message's calls it continues; it is a
// pointer because some servers leave it out, and a reader then takes the
// piece's place in the delta.
type ChunkToolCall struct {
	Index    *int              `json:"index,omitempty"`
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Function ChunkFunctionCall `json:"function"`
}

// ChunkFunctionCall is a piece of a call: its name, in the first piece,
// and a fragment of its JSON arguments.
type ChunkFunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Finish reasons of chat completions.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// ErrNoChoice is a response without a choice to translate.
var ErrNoChoice = errors.New("the upstream response has no choice")

// ParseResponse decodes a whole chat response.
func ParseResponse(b []byte) (*Response, error) {
	var c Response
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
