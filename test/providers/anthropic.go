package providers

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Anthropic is a Messages API stand-in.
type Anthropic struct {
	recorder
	Key string
}

// NewAnthropic accepts key as x-api-key.
func NewAnthropic(key string) *Anthropic { return &Anthropic{Key: key} }

type aMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type aBlock struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Source    *aSource        `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

type aSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type aRequest struct {
	Model     *string         `json:"model"`
	MaxTokens *int64          `json:"max_tokens"`
	Messages  []aMessage      `json:"messages"`
	System    json.RawMessage `json:"system,omitempty"`
	Tools     []struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"input_schema"`
		// CacheControl marks a prompt-caching breakpoint (documented on
		// tools, system and content blocks).
		CacheControl json.RawMessage `json:"cache_control,omitempty"`
	} `json:"tools,omitempty"`
	ToolChoice *struct {
		Type                   string `json:"type"`
		Name                   string `json:"name,omitempty"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
	} `json:"tool_choice,omitempty"`
	Thinking *struct {
		Type         string `json:"type"`
		BudgetTokens int64  `json:"budget_tokens,omitempty"`
	} `json:"thinking,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	TopK          *int            `json:"top_k,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

// ServeHTTP implements http.Handler.
func (a *Anthropic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", "req_standin_anthropic")
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		anthropicError(w, http.StatusNotFound, "not_found_error", "Not found")
		return
	}
	if r.Header.Get("x-api-key") != a.Key {
		anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "content-type must be application/json")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	var req aRequest
	if err := strictDecode(body, &req); err != nil {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	if err := checkAnthropic(&req); err != nil {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	rep := a.accept(r, body, realistic("anthropic", anthropicFirstTool(&req), anthropicAnswered(&req), false, body))
	if rep.Status != 0 && rep.Status != 200 {
		typ := map[int]string{429: "rate_limit_error", 529: "overloaded_error", 500: "api_error", 400: "invalid_request_error", 404: "not_found_error"}[rep.Status]
		anthropicError(w, rep.Status, typ, rep.ErrorMessage)
		return
	}
	if req.Stream {
		a.stream(w, &req, rep)
		return
	}
	var content []map[string]any
	if rep.Reasoning != "" {
		content = append(content, map[string]any{"type": "thinking", "thinking": rep.Reasoning, "signature": "sig"})
	}
	if rep.Text != "" {
		content = append(content, map[string]any{"type": "text", "text": rep.Text})
	}
	for _, c := range rep.Calls {
		content = append(content, map[string]any{"type": "tool_use", "id": c.ID, "name": c.Name, "input": json.RawMessage(c.Args)})
	}
	writeJSON(w, 200, map[string]any{"id": "msg_standin", "type": "message", "role": "assistant", "model": *req.Model,
		"content": content, "stop_reason": anthropicStop(rep), "stop_sequence": nil, "usage": anthropicUsage(rep.Usage, true)})
}

func anthropicStop(rep Reply) string {
	if rep.Stop != "" {
		return rep.Stop
	}
	if len(rep.Calls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

func anthropicUsage(u Usage, all bool) map[string]int64 {
	m := map[string]int64{"input_tokens": u.Input, "output_tokens": u.Output}
	if all {
		m["cache_creation_input_tokens"] = u.CacheWrite
		m["cache_read_input_tokens"] = u.CacheRead
	}
	return m
}

func checkAnthropic(req *aRequest) error {
	if req.Model == nil || *req.Model == "" {
		return fmt.Errorf("model: Field required")
	}
	if req.MaxTokens == nil {
		return fmt.Errorf("max_tokens: Field required")
	}
	if *req.MaxTokens < 1 {
		return fmt.Errorf("max_tokens: must be at least 1")
	}
	if len(req.Messages) == 0 {
		return fmt.Errorf("messages: at least one message is required")
	}
	if th := req.Thinking; th != nil {
		switch {
		case th.Type == "disabled":
		case th.Type != "enabled":
			return fmt.Errorf("thinking.type: must be enabled or disabled")
		case th.BudgetTokens < 1024:
			return fmt.Errorf("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
		case th.BudgetTokens >= *req.MaxTokens:
			return fmt.Errorf("`max_tokens` must be greater than `thinking.budget_tokens`")
		}
	}
	toolNames := map[string]bool{}
	for _, t := range req.Tools {
		if t.Name == "" || len(t.InputSchema) == 0 {
			return fmt.Errorf("tools: name and input_schema are required")
		}
		toolNames[t.Name] = true
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if !toolNames[tc.Name] {
				return fmt.Errorf("tool_choice names an unknown tool")
			}
		default:
			return fmt.Errorf("tool_choice.type: invalid")
		}
	}
	if len(req.System) > 0 && req.System[0] != '"' && req.System[0] != '[' {
		return fmt.Errorf("system: must be a string or an array of text blocks")
	}
	var prevToolUses map[string]bool
	for i, m := range req.Messages {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if m.Role != want {
			return fmt.Errorf("messages: roles must alternate between \"user\" and \"assistant\", starting with \"user\" (messages.%d)", i)
		}
		var blocks []aBlock
		if len(m.Content) > 0 && m.Content[0] == '"' {
			var s string
			_ = json.Unmarshal(m.Content, &s)
			blocks = []aBlock{{Type: "text", Text: &s}}
		} else {
			d := json.NewDecoder(strings.NewReader(string(m.Content)))
			d.DisallowUnknownFields()
			if err := d.Decode(&blocks); err != nil {
				return fmt.Errorf("messages.%d.content: %v", i, err)
			}
		}
		if len(blocks) == 0 {
			return fmt.Errorf("messages.%d: content must be non-empty", i)
		}
		uses := map[string]bool{}
		for j, b := range blocks {
			switch b.Type {
			case "text":
				if b.Text == nil || *b.Text == "" {
					return fmt.Errorf("messages.%d.content.%d: text content blocks must be non-empty", i, j)
				}
			case "image":
				if m.Role != "user" || b.Source == nil {
					return fmt.Errorf("messages.%d.content.%d: image needs a source, in a user turn", i, j)
				}
				switch b.Source.Type {
				case "base64":
					if !strings.HasPrefix(b.Source.MediaType, "image/") || b.Source.Data == "" {
						return fmt.Errorf("messages.%d.content.%d.source: media_type and data required", i, j)
					}
				case "url":
					if !strings.HasPrefix(b.Source.URL, "http") {
						return fmt.Errorf("messages.%d.content.%d.source.url: invalid", i, j)
					}
				default:
					return fmt.Errorf("messages.%d.content.%d.source.type: invalid", i, j)
				}
			case "tool_use":
				if m.Role != "assistant" || b.ID == "" || b.Name == "" || len(b.Input) == 0 || b.Input[0] != '{' {
					return fmt.Errorf("messages.%d.content.%d: tool_use needs id, name and an object input in an assistant turn", i, j)
				}
				uses[b.ID] = true
			case "tool_result":
				if m.Role != "user" || !prevToolUses[b.ToolUseID] {
					return fmt.Errorf("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message", i, j, b.ToolUseID)
				}
			default:
				return fmt.Errorf("messages.%d.content.%d.type: unknown %q", i, j, b.Type)
			}
		}
		prevToolUses = uses
	}
	if req.Messages[len(req.Messages)-1].Role != "user" {
		// Prefill is allowed, but the translator never sends one.
		return fmt.Errorf("the last message must be from the user")
	}
	return nil
}

func (a *Anthropic) stream(w http.ResponseWriter, req *aRequest, rep Reply) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	n := 0
	send := func(typ string, v map[string]any) bool {
		if rep.BreakAfter > 0 && n >= rep.BreakAfter {
			return false
		}
		n++
		v["type"] = typ
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b)
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	u := anthropicUsage(rep.Usage, true)
	u["output_tokens"] = 1
	if !send("message_start", map[string]any{"message": map[string]any{"id": "msg_standin", "type": "message", "role": "assistant", "model": *req.Model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": u}}) {
		return
	}
	send("ping", map[string]any{})
	idx := 0
	if rep.Reasoning != "" {
		send("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "thinking", "thinking": ""}})
		send("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "thinking_delta", "thinking": rep.Reasoning}})
		send("content_block_stop", map[string]any{"index": idx})
		idx++
	}
	if rep.Text != "" {
		if !send("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "text", "text": ""}}) {
			return
		}
		for _, p := range pieces(rep.Text, rep.Pieces) {
			if !send("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "text_delta", "text": p}}) {
				return
			}
		}
		send("content_block_stop", map[string]any{"index": idx})
		idx++
	}
	for _, c := range rep.Calls {
		send("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "tool_use", "id": c.ID, "name": c.Name, "input": map[string]any{}}})
		for _, p := range pieces(c.Args, 2) {
			send("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "input_json_delta", "partial_json": p}})
		}
		send("content_block_stop", map[string]any{"index": idx})
		idx++
	}
	if !send("message_delta", map[string]any{"delta": map[string]any{"stop_reason": anthropicStop(rep), "stop_sequence": nil}, "usage": map[string]int64{"output_tokens": rep.Usage.Output}}) {
		return
	}
	send("message_stop", map[string]any{})
}

// anthropicFirstTool is the tool an unscripted model calls: the one
// tool_choice names, else the first offered, unless tool_choice is none.
func anthropicFirstTool(req *aRequest) string {
	if len(req.Tools) == 0 || req.ToolChoice != nil && req.ToolChoice.Type == "none" {
		return ""
	}
	if req.ToolChoice != nil && req.ToolChoice.Type == "tool" {
		return req.ToolChoice.Name
	}
	return req.Tools[0].Name
}

// anthropicAnswered says the conversation holds a tool_result.
func anthropicAnswered(req *aRequest) bool {
	for _, m := range req.Messages {
		var blocks []struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				return true
			}
		}
	}
	return false
}
