package chatwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Request is a chat-completions request: what an inbound translator
// writes and what a provider translator reads. Field order is the order
// written; fields the client did not set are left out.
type Request struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Stop                StringList      `json:"stop,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
}

// StreamOptions asks for the usage chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ResponseFormat is text, json_object or json_schema. Its fields are
// declared in name order so that it is written as a map of them would be.
type ResponseFormat struct {
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
	Type       string      `json:"type"`
}

// JSONSchema is a json_schema response format's schema and its name.
type JSONSchema struct {
	Description string          `json:"description,omitempty"`
	Name        string          `json:"name"`
	Schema      json.RawMessage `json:"schema"`
	Strict      *bool           `json:"strict,omitempty"`
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

// StringList is a string or an array of strings (stop); it is written as
// an array.
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
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a call the assistant made, in a message it sent (a request's
// history) or one it answers.
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
