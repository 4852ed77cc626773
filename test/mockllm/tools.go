package mockllm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Tool calls. A chat request that offers function tools and whose last
// message is the user's and that holds no tool result yet is answered with
// a call of the first tool, finish_reason tool_calls; once the conversation
// holds a tool's result the mock answers in text as usual. The arguments are a
// fixed JSON object naming the tool, so a client's multi-turn tool loop
// can run against the mock deterministically.

type mockTool struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// toolToCall is the tool the mock calls for req, "" for none.
func toolToCall(req *request) string {
	if len(req.Tools) == 0 || len(req.Messages) == 0 || req.Messages[len(req.Messages)-1].Role != "user" {
		return ""
	}
	if string(req.ToolChoice) == `"none"` {
		return ""
	}
	for _, m := range req.Messages {
		if m.Role == "tool" {
			return ""
		}
	}
	var tools []mockTool
	if json.Unmarshal(req.Tools, &tools) != nil || len(tools) == 0 || tools[0].Function.Name == "" {
		return ""
	}
	return tools[0].Function.Name
}

// ToolArguments is the arguments JSON of the mock's call of tool name.
func ToolArguments(name string) string { return `{"tool":` + strconv.Quote(name) + `,"n":1}` }

// toolCall answers with a call of tool name, whole or streamed (the
// arguments in two fragments, as servers stream them).
func (s *Server) toolCall(ctx context.Context, w http.ResponseWriter, stream bool, id, model, name string, prompt int, includeUsage bool) bool {
	if !s.sleep(ctx, s.cfg.TTFT) {
		return false
	}
	args := ToolArguments(name)
	callID := "call_" + id
	usage := Usage{PromptTokens: prompt, CompletionTokens: 8, TotalTokens: prompt + 8}
	created := time.Now().Unix()
	if !stream {
		resp := map[string]any{"id": id, "object": "chat.completion", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{
				"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": callID, "type": "function",
					"function": map[string]any{"name": name, "arguments": args}}}}}}}
		if !s.cfg.OmitUsage {
			resp["usage"] = usage
		}
		b, _ := json.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(b)
		return err == nil
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := w.Write(append(append([]byte("data: "), b...), "\n\n"...)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	half := len(args) / 2
	steps := []map[string]any{
		chunk(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"index": 0, "id": callID,
			"type": "function", "function": map[string]any{"name": name, "arguments": ""}}}}, nil),
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": args[:half]}}}}, nil),
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": args[half:]}}}}, nil),
		chunk(map[string]any{}, "tool_calls"),
	}
	for _, c := range steps {
		if !send(c) {
			return false
		}
	}
	if includeUsage && !send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
		"choices": []any{}, "usage": usage}) {
		return false
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return false
	}
	return rc.Flush() == nil
}
