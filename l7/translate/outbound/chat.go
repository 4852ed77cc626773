package outbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Request is the part of a chat-completions request that translators
// carry to another provider.
type Request struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Stop                StringList      `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
}

// StreamOptions asks for the usage chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ResponseFormat is text, json_object or json_schema.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema,omitempty"`
}

// WantsUsage reports whether a stream should end with a usage chunk.
func (r *Request) WantsUsage() bool { return r.StreamOptions != nil && r.StreamOptions.IncludeUsage }

// Limit is the completion-token bound the client asked for (0: none).
func (r *Request) Limit() int64 {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Content is a message's content: a string, or an array of parts.
type Content struct {
	Text  string
	Parts []Part
	// IsParts is set when the client sent an array.
	IsParts bool
}

// Part is one content part.
type Part struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image part's location: a data: URL or an http(s) URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// UnmarshalJSON takes a string, null, or an array of parts.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*c = Content{}
		return nil
	case b[0] == '"':
		*c = Content{}
		return json.Unmarshal(b, &c.Text)
	case b[0] == '[':
		*c = Content{IsParts: true}
		return json.Unmarshal(b, &c.Parts)
	}
	return errors.New("content must be a string, an array of parts or null")
}

// MarshalJSON writes what was read.
func (c Content) MarshalJSON() ([]byte, error) {
	if c.IsParts {
		return json.Marshal(c.Parts)
	}
	return json.Marshal(c.Text)
}

// Texts calls f with each text of the content, in order.
func (c *Content) Texts(f func(string)) {
	if !c.IsParts {
		if c.Text != "" {
			f(c.Text)
		}
		return
	}
	for _, p := range c.Parts {
		if p.Type == "text" && p.Text != "" {
			f(p.Text)
		}
	}
}

// JoinedText is the content's texts joined by newlines.
func (c *Content) JoinedText() string {
	if !c.IsParts {
		return c.Text
	}
	var b []byte
	c.Texts(func(s string) {
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, s...)
	})
	return string(b)
}

// StringList is a string or an array of strings (stop).
type StringList []string

// UnmarshalJSON takes a string, null or an array of strings.
func (s *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// Tool is a function the model may call.
type Tool struct {
	Type     string   `json:"type"`
	Function Function `json:"function"`
}

// Function declares a tool.
type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// ToolCall is a call the assistant made.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall is a call's name and JSON arguments (as a string).
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolChoiceSpec is tool_choice read: "auto", "none", "required", or a
// function by name.
type ToolChoiceSpec struct {
	Mode string // auto | none | required | function
	Name string
}

// ParseToolChoice reads tool_choice (absent is auto).
func (r *Request) ParseToolChoice() (ToolChoiceSpec, error) {
	b := bytes.TrimSpace(r.ToolChoice)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return ToolChoiceSpec{Mode: "auto"}, nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return ToolChoiceSpec{}, err
		}
		switch s {
		case "auto", "none", "required":
			return ToolChoiceSpec{Mode: s}, nil
		}
		return ToolChoiceSpec{}, fmt.Errorf("tool_choice %q is not auto, none or required", s)
	}
	var o struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return ToolChoiceSpec{}, err
	}
	if o.Function.Name == "" {
		return ToolChoiceSpec{}, errors.New("tool_choice names no function")
	}
	return ToolChoiceSpec{Mode: "function", Name: o.Function.Name}, nil
}

// Response is a whole chat completion.
type Response struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`
}

// Choice is one answer.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
}

// ResponseMessage is the assistant's message.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
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

// Chunk is one streamed chat-completion chunk.
type Chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChunkChoice is one choice's delta.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is what a chunk adds to the message.
type Delta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	ToolCalls        []ChunkToolCall `json:"tool_calls,omitempty"`
}

// ChunkToolCall is a tool call's first (id, name) or later (arguments)
// piece, by index among the message's tool calls.
type ChunkToolCall struct {
	Index    int               `json:"index"`
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Function ChunkFunctionCall `json:"function"`
}

// ChunkFunctionCall is a piece of a call.
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
