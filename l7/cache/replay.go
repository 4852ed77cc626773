package cache

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Object names of the two cached endpoints.
const (
	ObjectChat       = "chat.completion"
	ObjectChatChunk  = "chat.completion.chunk"
	ObjectCompletion = "text_completion"
)

type wholeMessage struct {
	Role      string           `json:"role"`
	Content   *string          `json:"content"`
	Refusal   *string          `json:"refusal,omitempty"`
	ToolCalls []map[string]any `json:"tool_calls,omitempty"`
}

type wholeChoice struct {
	Index        int             `json:"index"`
	Message      *wholeMessage   `json:"message,omitempty"`
	Text         *string         `json:"text,omitempty"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

type wholeAnswer struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint *string         `json:"system_fingerprint,omitempty"`
	Choices           []wholeChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

var errNotReplayable = errors.New("cache: stored answer has no choices to replay")

// Replay renders a stored whole answer as the event stream the upstream
// would have sent: for each choice a chunk with its content (tool calls,
// refusal and log probabilities included) and a chunk with its finish
// reason, then, when includeUsage, a chunk with no choices and the usage,
// then [DONE]. Each event is "data: <json>\n\n".
func Replay(e *Entry, includeUsage bool) ([]byte, error) {
	var w wholeAnswer
	if err := json.Unmarshal(e.Body, &w); err != nil || len(w.Choices) == 0 {
		return nil, errNotReplayable
	}
	chat := w.Object != ObjectCompletion
	object := ObjectCompletion
	if chat {
		object = ObjectChatChunk
	}
	type chunk struct {
		ID                string          `json:"id"`
		Object            string          `json:"object"`
		Created           int64           `json:"created"`
		Model             string          `json:"model"`
		SystemFingerprint *string         `json:"system_fingerprint,omitempty"`
		Choices           []any           `json:"choices"`
		Usage             json.RawMessage `json:"usage,omitempty"`
	}
	out := make([]byte, 0, len(e.Body)*2+256)
	emit := func(choices []any, usage json.RawMessage) error {
		b, err := json.Marshal(chunk{ID: w.ID, Object: object, Created: w.Created, Model: w.Model,
			SystemFingerprint: w.SystemFingerprint, Choices: choices, Usage: usage})
		if err != nil {
			return err
		}
		out = append(out, "data: "...)
		out = append(out, b...)
		out = append(out, "\n\n"...)
		return nil
	}
	for _, c := range w.Choices {
		var first, last map[string]any
		if chat {
			delta := map[string]any{"role": "assistant", "content": ""}
			if m := c.Message; m != nil {
				if m.Role != "" {
					delta["role"] = m.Role
				}
				if m.Content != nil {
					delta["content"] = *m.Content
				} else if len(m.ToolCalls) > 0 || m.Refusal != nil {
					delta["content"] = nil
				}
				if m.Refusal != nil {
					delta["refusal"] = *m.Refusal
				}
				if len(m.ToolCalls) > 0 {
					calls := make([]any, len(m.ToolCalls))
					for i, tc := range m.ToolCalls {
						withIndex := make(map[string]any, len(tc)+1)
						for k, v := range tc {
							withIndex[k] = v
						}
						withIndex["index"] = i // stream deltas carry it
						calls[i] = withIndex
					}
					delta["tool_calls"] = calls
				}
			}
			first = map[string]any{"index": c.Index, "delta": delta, "finish_reason": nil}
			last = map[string]any{"index": c.Index, "delta": map[string]any{}, "finish_reason": c.FinishReason}
		} else {
			text := ""
			if c.Text != nil {
				text = *c.Text
			}
			first = map[string]any{"index": c.Index, "text": text, "finish_reason": nil}
			last = map[string]any{"index": c.Index, "text": "", "finish_reason": c.FinishReason}
		}
		if len(c.Logprobs) > 0 && string(c.Logprobs) != "null" {
			first["logprobs"] = c.Logprobs
		}
		if err := emit([]any{first}, nil); err != nil {
			return nil, err
		}
		if err := emit([]any{last}, nil); err != nil {
			return nil, err
		}
	}
	if includeUsage {
		u := w.Usage
		if len(u) == 0 || string(u) == "null" {
			u = usageJSON(e.PromptTokens, e.CompletionTokens)
		}
		if err := emit([]any{}, u); err != nil {
			return nil, err
		}
	}
	return append(out, "data: [DONE]\n\n"...), nil
}

func usageJSON(prompt, completion int64) json.RawMessage {
	b := append([]byte(`{"prompt_tokens":`), strconv.FormatInt(prompt, 10)...)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, completion, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, prompt+completion, 10)
	return append(b, '}')
}
