package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Usage is the Responses API's usage object.
type Usage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// FromUsage maps chat usage.
func FromUsage(u *chatwire.Usage) *Usage {
	if u == nil {
		return nil
	}
	var r Usage
	r.InputTokens, r.OutputTokens = u.PromptTokens, u.CompletionTokens
	r.TotalTokens = u.PromptTokens + u.CompletionTokens
	r.InputTokensDetails.CachedTokens = u.Cached()
	r.OutputTokensDetails.ReasoningTokens = u.Reasoning()
	return &r
}

// Item is an output item: a message or a function call.
type Item struct {
	Type      string        `json:"type"`
	ID        string        `json:"id"`
	Status    string        `json:"status"`
	Role      string        `json:"role,omitempty"`
	Content   []ContentPart `json:"content,omitempty"`
	CallID    string        `json:"call_id,omitempty"`
	Name      string        `json:"name,omitempty"`
	Arguments *string       `json:"arguments,omitempty"`
}

// ContentPart is a message's output_text or refusal part.
type ContentPart struct {
	Type        string   `json:"type"`
	Text        *string  `json:"text,omitempty"`
	Refusal     *string  `json:"refusal,omitempty"`
	Annotations []string `json:"annotations"`
}

// Response is the Response object.
type Response struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Error              any             `json:"error"`
	IncompleteDetails  *incomplete     `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	Model              string          `json:"model"`
	Output             []Item          `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              bool            `json:"store"`
	Temperature        *float64        `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopP               *float64        `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *Usage          `json:"usage"`
	User               *string         `json:"user"`
	Metadata           json.RawMessage `json:"metadata"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

// newResponse is the Response object's frame, from the request's echo.
func newResponse(id string, created int64, model string, e *Echo) *Response {
	r := &Response{ID: id, Object: "response", CreatedAt: created, Status: "in_progress", Model: model,
		Instructions: e.Instructions, MaxOutputTokens: e.MaxOutputTokens, Output: []Item{},
		ParallelToolCalls: e.ParallelToolCalls == nil || *e.ParallelToolCalls, Temperature: e.Temperature, TopP: e.TopP,
		Text: e.Text, ToolChoice: e.ToolChoice, Tools: e.Tools, Truncation: "disabled", Metadata: e.Metadata}
	if r.Text == nil {
		r.Text = json.RawMessage(`{"format":{"type":"text"}}`)
	}
	if r.ToolChoice == nil {
		r.ToolChoice = json.RawMessage(`"auto"`)
	}
	if r.Tools == nil {
		r.Tools = json.RawMessage(`[]`)
	}
	if r.Metadata == nil {
		r.Metadata = json.RawMessage(`{}`)
	}
	if e.User != "" {
		u := e.User
		r.User = &u
	}
	return r
}

// status maps a chat finish reason to the response's status.
func (r *Response) finish(reason string) {
	switch reason {
	case "length":
		r.Status, r.IncompleteDetails = "incomplete", &incomplete{Reason: "max_output_tokens"}
	case "content_filter":
		r.Status, r.IncompleteDetails = "incomplete", &incomplete{Reason: "content_filter"}
	default:
		r.Status = "completed"
	}
}

// ids derives the response's and its items' ids from the upstream's
// completion id.
func responseID(id string) string {
	id = strings.TrimPrefix(id, "chatcmpl-")
	if id == "" {
		id = "gateway"
	}
	return "resp_" + id
}

func messageItemID(resp string) string { return "msg_" + strings.TrimPrefix(resp, "resp_") }

func callItemID(callID string) string { return "fc_" + strings.TrimPrefix(callID, "call_") }

var errNotJSON = errors.New("the upstream returned tool arguments that are not valid JSON")

// FromChat translates a whole chat-completions response into a Response
// body.
func FromChat(body []byte, info Info) ([]byte, error) {
	c, err := chatwire.ParseResponse(body)
	if err != nil {
		return nil, err
	}
	ch := &c.Choices[0]
	model := c.Model
	if model == "" {
		model = info.Model
	}
	r := newResponse(responseID(c.ID), c.Created, model, &info.Echo)
	m := &ch.Message
	if m.Content != nil && *m.Content != "" || m.Refusal != nil && *m.Refusal != "" {
		it := Item{Type: "message", ID: messageItemID(r.ID), Status: "completed", Role: "assistant"}
		if m.Content != nil && *m.Content != "" {
			it.Content = append(it.Content, ContentPart{Type: "output_text", Text: m.Content, Annotations: []string{}})
		}
		if m.Refusal != nil && *m.Refusal != "" {
			it.Content = append(it.Content, ContentPart{Type: "refusal", Refusal: m.Refusal, Annotations: []string{}})
		}
		r.Output = append(r.Output, it)
	}
	for _, tc := range m.ToolCalls {
		args := tc.Function.Arguments
		if a := bytes.TrimSpace([]byte(args)); len(a) > 0 && !json.Valid(a) {
			return nil, errNotJSON
		}
		r.Output = append(r.Output, Item{Type: "function_call", ID: callItemID(tc.ID), Status: "completed",
			CallID: tc.ID, Name: tc.Function.Name, Arguments: &args})
	}
	r.finish(ch.FinishReason)
	r.Usage = FromUsage(c.Usage)
	return json.Marshal(r)
}
