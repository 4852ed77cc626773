package providers

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// Azure is an Azure OpenAI deployments stand-in.
type Azure struct {
	recorder
	Key         string
	Bearer      bool
	Deployments []string
}

// NewAzure serves deployments, authenticated by key (api-key header, or a
// bearer token when bearer).
func NewAzure(key string, bearer bool, deployments ...string) *Azure {
	return &Azure{Key: key, Bearer: bearer, Deployments: deployments}
}

// ServeHTTP implements http.Handler.
func (a *Azure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("apim-request-id", "standin-azure-request")
	azErr := func(status int, code, msg string) {
		writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/")
	dep, op, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || op != "chat/completions" && op != "embeddings" {
		azErr(404, "404", "Resource not found")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		azErr(404, "404", "Resource not found (api-version is required)")
		return
	}
	authed := r.Header.Get("api-key") == a.Key && !a.Bearer || a.Bearer && r.Header.Get("Authorization") == "Bearer "+a.Key
	if !authed {
		azErr(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")
		return
	}
	found := false
	for _, d := range a.Deployments {
		found = found || d == dep
	}
	if !found {
		azErr(404, "DeploymentNotFound", "The API deployment for this resource does not exist.")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if op == "embeddings" {
		a.embeddings(w, r, dep, body)
		return
	}
	var req struct {
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
		Stream bool `json:"stream"`
		Tools  []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
		ToolChoice     json.RawMessage `json:"tool_choice"`
		ResponseFormat *struct {
			Type string `json:"type"`
		} `json:"response_format"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		azErr(400, "BadRequest", "messages is required")
		return
	}
	first, answered := "", false
	if len(req.Tools) > 0 && string(req.ToolChoice) != `"none"` {
		first = req.Tools[0].Function.Name
	}
	for _, m := range req.Messages {
		answered = answered || m.Role == "tool"
	}
	rep := a.accept(r, body, realistic("azure-openai", first, answered, req.ResponseFormat != nil && req.ResponseFormat.Type != "text", body))
	if rep.Status != 0 && rep.Status != 200 {
		azErr(rep.Status, fmt.Sprint(rep.Status), rep.ErrorMessage)
		return
	}
	prompt := rep.Usage.Input + rep.Usage.CacheRead
	usage := map[string]any{"prompt_tokens": prompt, "completion_tokens": rep.Usage.Output, "total_tokens": prompt + rep.Usage.Output}
	if rep.Usage.CacheRead > 0 {
		usage["prompt_tokens_details"] = map[string]int64{"cached_tokens": rep.Usage.CacheRead}
	}
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": rep.Text}
		finish := "stop"
		if len(rep.Calls) > 0 {
			var calls []any
			for _, c := range rep.Calls {
				calls = append(calls, map[string]any{"id": c.ID, "type": "function", "function": map[string]string{"name": c.Name, "arguments": c.Args}})
			}
			msg["content"], msg["tool_calls"], finish = nil, calls, "tool_calls"
		}
		writeJSON(w, 200, map[string]any{"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": dep,
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}}, "usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	for _, p := range pieces(rep.Text, rep.Pieces) {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": dep,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}, "finish_reason": nil}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	finish := "stop"
	for i, c := range rep.Calls {
		// Azure streams a call as OpenAI does: id and name first, then
		// the arguments in fragments.
		deltas := []map[string]any{{"index": i, "id": c.ID, "type": "function", "function": map[string]string{"name": c.Name, "arguments": ""}}}
		for _, p := range pieces(c.Args, 2) {
			deltas = append(deltas, map[string]any{"index": i, "function": map[string]string{"arguments": p}})
		}
		for _, d := range deltas {
			b, _ := json.Marshal(map[string]any{"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": dep,
				"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{d}}, "finish_reason": nil}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		finish = "tool_calls"
	}
	b, _ := json.Marshal(map[string]any{"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": dep,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": finish}}})
	fmt.Fprintf(w, "data: %s\n\n", b)
	b, _ = json.Marshal(map[string]any{"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": dep, "choices": []any{}, "usage": usage})
	fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", b)
}

// embeddings answers a deployment's embeddings: input a string or an
// array of strings, one 8-dimension vector each, usage in OpenAI's shape.
func (a *Azure) embeddings(w http.ResponseWriter, r *http.Request, dep string, body []byte) {
	var req struct {
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	var inputs []string
	if json.Unmarshal(body, &req) != nil || len(req.Input) == 0 {
		writeJSON(w, 400, map[string]any{"error": map[string]any{"code": "BadRequest", "message": "input is required"}})
		return
	}
	if json.Unmarshal(req.Input, &inputs) != nil {
		var one string
		if json.Unmarshal(req.Input, &one) != nil || one == "" {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"code": "BadRequest", "message": "input must be a string or an array of strings"}})
			return
		}
		inputs = []string{one}
	}
	in := int64(len(body)/4 + 1)
	rep := a.accept(r, body, Reply{Usage: Usage{Input: in}})
	if rep.Status != 0 && rep.Status != 200 {
		writeJSON(w, rep.Status, map[string]any{"error": map[string]any{"code": fmt.Sprint(rep.Status), "message": rep.ErrorMessage}})
		return
	}
	var data []any
	for i := range inputs {
		vec := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, float32(i)}
		var emb any = vec
		if req.EncodingFormat == "base64" {
			// Little-endian float32s, base64-encoded, as the service sends them.
			b := make([]byte, 0, 4*len(vec))
			for _, f := range vec {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": emb})
	}
	writeJSON(w, 200, map[string]any{"object": "list", "model": dep, "data": data,
		"usage": map[string]int64{"prompt_tokens": rep.Usage.Input, "total_tokens": rep.Usage.Input}})
}
