package providers

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Gemini is a generateContent / streamGenerateContent stand-in.
type Gemini struct {
	recorder
	Key string
}

// NewGemini accepts key as x-goog-api-key.
func NewGemini(key string) *Gemini { return &Gemini{Key: key} }

func geminiError(w http.ResponseWriter, status int, st, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": st}})
}

type gPart struct {
	Text       *string `json:"text,omitempty"`
	Thought    bool    `json:"thought,omitempty"`
	InlineData *struct {
		MimeType string `json:"mimeType"`
		Data     string `json:"data"`
	} `json:"inlineData,omitempty"`
	FileData *struct {
		MimeType string `json:"mimeType,omitempty"`
		FileURI  string `json:"fileUri"`
	} `json:"fileData,omitempty"`
	FunctionCall *struct {
		ID   string          `json:"id,omitempty"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args,omitempty"`
	} `json:"functionCall,omitempty"`
	FunctionResponse *struct {
		ID       string          `json:"id,omitempty"`
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse,omitempty"`
}

type gContent struct {
	Role  string  `json:"role,omitempty"`
	Parts []gPart `json:"parts"`
}

type gRequest struct {
	Contents          []gContent        `json:"contents"`
	SystemInstruction *gContent         `json:"systemInstruction,omitempty"`
	Tools             []json.RawMessage `json:"tools,omitempty"`
	ToolConfig        *struct {
		FunctionCallingConfig struct {
			Mode                 string   `json:"mode"`
			AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
		} `json:"functionCallingConfig"`
	} `json:"toolConfig,omitempty"`
	GenerationConfig *struct {
		MaxOutputTokens    *int64          `json:"maxOutputTokens,omitempty"`
		Temperature        *float64        `json:"temperature,omitempty"`
		TopP               *float64        `json:"topP,omitempty"`
		TopK               *int64          `json:"topK,omitempty"`
		StopSequences      []string        `json:"stopSequences,omitempty"`
		ResponseMimeType   string          `json:"responseMimeType,omitempty"`
		ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	} `json:"generationConfig,omitempty"`
}

func checkGemini(req *gRequest) error {
	if len(req.Contents) == 0 {
		return fmt.Errorf("* GenerateContentRequest.contents: contents is not specified")
	}
	if si := req.SystemInstruction; si != nil {
		for _, p := range si.Parts {
			if p.Text == nil {
				return fmt.Errorf("systemInstruction: only text parts")
			}
		}
	}
	var prevCalls map[string]bool
	for i, c := range req.Contents {
		if c.Role == "" {
			// The reference lets a single-turn request leave the role
			// unset; the service reads it as the user's.
			c.Role = "user"
		}
		if c.Role != "user" && c.Role != "model" {
			return fmt.Errorf("Please use a valid role: user, model. (contents[%d].role %q)", i, c.Role)
		}
		if len(c.Parts) == 0 {
			return fmt.Errorf("* GenerateContentRequest.contents[%d].parts: contents.parts must not be empty.", i)
		}
		calls := map[string]bool{}
		for j, p := range c.Parts {
			n := 0
			for _, set := range []bool{p.Text != nil, p.InlineData != nil, p.FileData != nil, p.FunctionCall != nil, p.FunctionResponse != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("contents[%d].parts[%d]: a part must hold exactly one of text, inlineData, fileData, functionCall, functionResponse", i, j)
			}
			switch {
			case p.InlineData != nil && (!strings.Contains(p.InlineData.MimeType, "/") || p.InlineData.Data == ""):
				return fmt.Errorf("contents[%d].parts[%d].inlineData: mimeType and data are required", i, j)
			case p.FileData != nil && p.FileData.FileURI == "":
				return fmt.Errorf("contents[%d].parts[%d].fileData.fileUri is required", i, j)
			case p.FunctionCall != nil:
				if c.Role != "model" || p.FunctionCall.Name == "" {
					return fmt.Errorf("contents[%d].parts[%d].functionCall: only in model turns, with a name", i, j)
				}
				calls[p.FunctionCall.Name] = true
			case p.FunctionResponse != nil:
				r := p.FunctionResponse.Response
				if c.Role != "user" || !prevCalls[p.FunctionResponse.Name] || len(r) == 0 || r[0] != '{' {
					return fmt.Errorf("contents[%d].parts[%d].functionResponse: must answer a functionCall of the turn before, with an object", i, j)
				}
			}
		}
		prevCalls = calls
	}
	if tc := req.ToolConfig; tc != nil {
		switch tc.FunctionCallingConfig.Mode {
		case "AUTO", "ANY", "NONE", "VALIDATED":
		default:
			return fmt.Errorf("toolConfig.functionCallingConfig.mode: invalid")
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (g *Gemini) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1beta/models/")
	model, method, ok2 := strings.Cut(rest, ":")
	if r.Method != http.MethodPost || !ok || !ok2 || (method != "generateContent" && method != "streamGenerateContent") || model == "" {
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "method not found")
		return
	}
	if k := r.Header.Get("x-goog-api-key"); k != g.Key {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
		return
	}
	stream := method == "streamGenerateContent"
	if stream && r.URL.Query().Get("alt") != "sse" {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "this stand-in streams only with alt=sse")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	var req gRequest
	if err := strictDecode(body, &req); err != nil {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received. "+err.Error())
		return
	}
	if err := checkGemini(&req); err != nil {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
		return
	}
	rep := g.accept(r, body, realistic("gemini", geminiFirstTool(&req), geminiAnswered(&req), req.GenerationConfig != nil && req.GenerationConfig.ResponseMimeType == "application/json", body))
	if rep.Status != 0 && rep.Status != 200 {
		st := map[int]string{429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT", 500: "INTERNAL", 503: "UNAVAILABLE", 404: "NOT_FOUND", 403: "PERMISSION_DENIED"}[rep.Status]
		geminiError(w, rep.Status, st, rep.ErrorMessage)
		return
	}
	stop := rep.Stop
	if stop == "" {
		stop = "STOP"
	}
	usage := map[string]int64{"promptTokenCount": rep.Usage.Input + rep.Usage.CacheRead, "candidatesTokenCount": rep.Usage.Output,
		"totalTokenCount": rep.Usage.Input + rep.Usage.CacheRead + rep.Usage.Output + rep.Usage.Reasoning}
	if rep.Usage.CacheRead > 0 {
		usage["cachedContentTokenCount"] = rep.Usage.CacheRead
	}
	if rep.Usage.Reasoning > 0 {
		usage["thoughtsTokenCount"] = rep.Usage.Reasoning
	}
	calls := func() []map[string]any {
		var ps []map[string]any
		for _, c := range rep.Calls {
			ps = append(ps, map[string]any{"functionCall": map[string]any{"name": c.Name, "args": json.RawMessage(c.Args)}})
		}
		return ps
	}
	if !stream {
		var parts []map[string]any
		if rep.Reasoning != "" {
			parts = append(parts, map[string]any{"text": rep.Reasoning, "thought": true})
		}
		if rep.Text != "" {
			parts = append(parts, map[string]any{"text": rep.Text})
		}
		parts = append(parts, calls()...)
		writeJSON(w, 200, map[string]any{"candidates": []any{map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "finishReason": stop, "index": 0}},
			"usageMetadata": usage, "modelVersion": model, "responseId": "standin-gemini"})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	ps := pieces(rep.Text, rep.Pieces)
	n := 0
	for i, p := range ps {
		if rep.BreakAfter > 0 && n >= rep.BreakAfter {
			return
		}
		n++
		parts := []map[string]any{{"text": p}}
		cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
		ev := map[string]any{"candidates": []any{cand}, "modelVersion": model, "responseId": "standin-gemini",
			"usageMetadata": map[string]int64{"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}}
		if i == len(ps)-1 {
			if cs := calls(); len(cs) > 0 {
				cand["content"] = map[string]any{"role": "model", "parts": append(parts, cs...)}
			}
			cand["finishReason"] = stop
			ev["usageMetadata"] = usage
		}
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\r\n\r\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
}

// geminiFirstTool is the function an unscripted model calls: the first
// declared, unless the calling mode is NONE.
func geminiFirstTool(req *gRequest) string {
	if req.ToolConfig != nil && req.ToolConfig.FunctionCallingConfig.Mode == "NONE" {
		return ""
	}
	for _, raw := range req.Tools {
		var t struct {
			FunctionDeclarations []struct {
				Name string `json:"name"`
			} `json:"functionDeclarations"`
		}
		if json.Unmarshal(raw, &t) == nil && len(t.FunctionDeclarations) > 0 {
			return t.FunctionDeclarations[0].Name
		}
	}
	return ""
}

// geminiAnswered says the conversation holds a functionResponse.
func geminiAnswered(req *gRequest) bool {
	for _, c := range req.Contents {
		for _, p := range c.Parts {
			if p.FunctionResponse != nil {
				return true
			}
		}
	}
	return false
}
