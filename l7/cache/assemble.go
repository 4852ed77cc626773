package cache

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// Assembler joins a streamed answer's chunks into the whole answer a
// non-streaming client would have received, for storing. It gives up (Ok
// false) on what it cannot rebuild exactly: tool-call or function-call
// deltas, log probabilities, an error event, a malformed chunk, more than
// max bytes, or a stream that did not end with [DONE] after every choice
// finished.
type Assembler struct {
	max     int
	size    int
	bad     bool
	done    bool
	head    wholeAnswer
	choices map[int]*assembled
}

type assembled struct {
	role    string
	content strings.Builder
	text    strings.Builder
	finish  *string
}

// Reset prepares a for a new stream of at most max bytes of content.
func (a *Assembler) Reset(max int) {
	*a = Assembler{max: max}
}

type streamChunk struct {
	ID                string  `json:"id"`
	Object            string  `json:"object"`
	Created           int64   `json:"created"`
	Model             string  `json:"model"`
	SystemFingerprint *string `json:"system_fingerprint"`
	Choices           []struct {
		Index int `json:"index"`
		Delta *struct {
			Role         string          `json:"role"`
			Content      *string         `json:"content"`
			Refusal      *string         `json:"refusal"`
			ToolCalls    json.RawMessage `json:"tool_calls"`
			FunctionCall json.RawMessage `json:"function_call"`
		} `json:"delta"`
		Text         *string         `json:"text"`
		FinishReason *string         `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Error json.RawMessage `json:"error"`
}

func present(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }

// Event takes one event's data.
func (a *Assembler) Event(data []byte) {
	if a.bad {
		return
	}
	if a.done {
		a.bad = true // data after [DONE]
		return
	}
	if bytes.Equal(data, []byte("[DONE]")) {
		a.done = true
		return
	}
	a.size += len(data)
	if a.size > a.max {
		a.bad = true
		return
	}
	var c streamChunk
	if err := json.Unmarshal(data, &c); err != nil || present(c.Error) {
		a.bad = true
		return
	}
	if a.choices == nil {
		a.choices = map[int]*assembled{}
		a.head = wholeAnswer{ID: c.ID, Created: c.Created, Model: c.Model, SystemFingerprint: c.SystemFingerprint, Object: ObjectCompletion}
		if c.Object == ObjectChatChunk {
			a.head.Object = ObjectChat
		}
	}
	for _, ch := range c.Choices {
		if ch.Index < 0 || ch.Index > 1024 || present(ch.Logprobs) {
			a.bad = true
			return
		}
		acc := a.choices[ch.Index]
		if acc == nil {
			acc = &assembled{}
			a.choices[ch.Index] = acc
		}
		if d := ch.Delta; d != nil {
			if present(d.ToolCalls) || present(d.FunctionCall) || d.Refusal != nil {
				a.bad = true
				return
			}
			if d.Role != "" {
				acc.role = d.Role
			}
			if d.Content != nil {
				acc.content.WriteString(*d.Content)
			}
		}
		if ch.Text != nil {
			acc.text.WriteString(*ch.Text)
		}
		if ch.FinishReason != nil {
			fr := *ch.FinishReason
			acc.finish = &fr
		}
	}
}

// Whole returns the whole answer with usage, ok false when the stream
// cannot be stored.
func (a *Assembler) Whole(prompt, completion int64) ([]byte, bool) {
	if a.bad || !a.done || len(a.choices) == 0 {
		return nil, false
	}
	w := a.head
	idx := make([]int, 0, len(a.choices))
	for i := range a.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		acc := a.choices[i]
		if acc.finish == nil {
			return nil, false
		}
		c := wholeChoice{Index: i, FinishReason: acc.finish}
		if w.Object == ObjectChat {
			role := acc.role
			if role == "" {
				role = "assistant"
			}
			content := acc.content.String()
			c.Message = &wholeMessage{Role: role, Content: &content}
		} else {
			text := acc.text.String()
			c.Text = &text
		}
		w.Choices = append(w.Choices, c)
	}
	w.Usage = usageJSON(prompt, completion)
	b, err := json.Marshal(w)
	if err != nil {
		return nil, false
	}
	return b, true
}
