// Package gemini translates chat completions to Google's Gemini API
// (POST /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse, x-goog-api-key) and its answers and SSE
// events back (see l7/translate/outbound).
//
// Gemini's roles are user and model: assistant turns become model turns,
// system and developer messages the systemInstruction, tool messages
// functionResponse parts of a user turn, named by the call they answer
// (Gemini matches results by function name, so the name is found from the
// assistant's tool_calls earlier in the conversation). Gemini's calls carry
// no id unless it sends one: the translation makes call_<n> ids.
package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// Translator speaks generateContent.
type Translator struct {
	BaseURL string // default https://generativelanguage.googleapis.com
	Key     *outbound.Secret
}

// ProviderName implements outbound.Translator.
func (*Translator) ProviderName() string { return "gcp.gemini" }

type generateRequest struct {
	Contents          []content         `json:"contents"`
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	Tools             []toolDecl        `json:"tools,omitempty"`
	ToolConfig        *toolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
}

type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

type part struct {
	Text             string            `json:"text,omitempty"`
	Thought          bool              `json:"thought,omitempty"`
	InlineData       *blob             `json:"inlineData,omitempty"`
	FileData         *fileData         `json:"fileData,omitempty"`
	FunctionCall     *functionCall     `json:"functionCall,omitempty"`
	FunctionResponse *functionResponse `json:"functionResponse,omitempty"`
}

type blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type fileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

type functionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// callID is the chat id of the message's call n: Gemini's own, where it
// gives one.
func (fc *functionCall) callID(n int) string {
	if fc.ID != "" {
		return fc.ID
	}
	return "call_" + strconv.Itoa(n)
}

type functionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type toolDecl struct {
	FunctionDeclarations []functionDecl `json:"functionDeclarations"`
}

type functionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type toolConfig struct {
	FunctionCallingConfig struct {
		Mode                 string   `json:"mode"`
		AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
	} `json:"functionCallingConfig"`
}

type generationConfig struct {
	MaxOutputTokens  int64           `json:"maxOutputTokens,omitempty"`
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"topP,omitempty"`
	StopSequences    []string        `json:"stopSequences,omitempty"`
	ResponseMimeType string          `json:"responseMimeType,omitempty"`
	ResponseSchema   json.RawMessage `json:"responseJsonSchema,omitempty"`
}

type generateResponse struct {
	Candidates []struct {
		Content      *content `json:"content"`
		FinishReason string   `json:"finishReason"`
		Index        int      `json:"index"`
	} `json:"candidates"`
	UsageMetadata *usageMetadata `json:"usageMetadata"`
	ModelVersion  string         `json:"modelVersion"`
	ResponseID    string         `json:"responseId"`
}

type usageMetadata struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
}

// chat: promptTokenCount already includes cached content; completion
// counts thoughts as OpenAI counts reasoning tokens.
func (u *usageMetadata) chat() *chatwire.Usage {
	return chatwire.NewUsage(u.PromptTokenCount, u.CandidatesTokenCount+u.ThoughtsTokenCount, u.CachedContentTokenCount, u.ThoughtsTokenCount)
}

// Body is the generateContent body for r (exported for tests and fuzzing).
func Body(r *chatwire.Request) ([]byte, error) {
	var gr generateRequest
	names := map[string]string{} // tool call id -> function name
	var system []part
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case "system", "developer":
			if s := m.Content.JoinedText(); s != "" {
				system = append(system, part{Text: s})
			}
		case "user":
			ps, err := userParts(&m.Content)
			if err != nil {
				return nil, err
			}
			gr.Contents = appendTurn(gr.Contents, "user", ps...)
		case "assistant":
			var ps []part
			m.Content.Texts(func(s string) { ps = append(ps, part{Text: s}) })
			for _, tc := range m.ToolCalls {
				args, err := outbound.CallInput(tc.Function.Arguments)
				if err != nil {
					return nil, err
				}
				names[tc.ID] = tc.Function.Name
				ps = append(ps, part{FunctionCall: &functionCall{Name: tc.Function.Name, Args: args}})
			}
			if len(ps) == 0 {
				continue
			}
			gr.Contents = appendTurn(gr.Contents, "model", ps...)
		case "tool":
			name, ok := names[m.ToolCallID]
			if !ok {
				return nil, outbound.Invalid("a tool message answers no earlier tool call (tool_call_id)")
			}
			// Gemini wants an object: a JSON object result is passed as
			// it is, anything else as {"result": text}.
			text := m.Content.JoinedText()
			resp := json.RawMessage(text)
			if t := bytes.TrimSpace(resp); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
				resp, _ = json.Marshal(map[string]string{"result": text})
			}
			gr.Contents = appendTurn(gr.Contents, "user", part{FunctionResponse: &functionResponse{Name: name, Response: resp}})
		default:
			return nil, outbound.Invalid("unknown message role " + outbound.Clip(m.Role))
		}
	}
	if len(gr.Contents) == 0 {
		return nil, outbound.Invalid("the request has no user or assistant message")
	}
	if len(system) > 0 {
		gr.SystemInstruction = &content{Parts: system}
	}
	gc := generationConfig{MaxOutputTokens: r.Limit(), Temperature: r.Temperature, TopP: r.TopP, StopSequences: r.Stop}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_object":
			gc.ResponseMimeType = "application/json"
		case "json_schema":
			gc.ResponseMimeType = "application/json"
			if rf.JSONSchema != nil {
				gc.ResponseSchema = rf.JSONSchema.Schema
			}
		}
	}
	if gc.MaxOutputTokens > 0 || gc.Temperature != nil || gc.TopP != nil || len(gc.StopSequences) > 0 || gc.ResponseMimeType != "" {
		gr.GenerationConfig = &gc
	}
	if len(r.Tools) > 0 {
		var td toolDecl
		for _, tl := range r.Tools {
			if tl.Type != "function" && tl.Type != "" {
				return nil, outbound.Invalid("only function tools can be sent to this provider")
			}
			td.FunctionDeclarations = append(td.FunctionDeclarations, functionDecl{Name: tl.Function.Name, Description: tl.Function.Description, Parameters: tl.Function.Parameters})
		}
		gr.Tools = []toolDecl{td}
		tc, err := r.ParseToolChoice()
		if err != nil {
			return nil, outbound.Invalid(err.Error())
		}
		cfg := &toolConfig{}
		switch tc.Mode {
		case "auto":
			cfg = nil
		case "none":
			cfg.FunctionCallingConfig.Mode = "NONE"
		case "required":
			cfg.FunctionCallingConfig.Mode = "ANY"
		case "function":
			cfg.FunctionCallingConfig.Mode = "ANY"
			cfg.FunctionCallingConfig.AllowedFunctionNames = []string{tc.Name}
		}
		gr.ToolConfig = cfg
	}
	return json.Marshal(&gr)
}

func appendTurn(cs []content, role string, ps ...part) []content {
	if n := len(cs); n > 0 && cs[n-1].Role == role {
		cs[n-1].Parts = append(cs[n-1].Parts, ps...)
		return cs
	}
	return append(cs, content{Role: role, Parts: ps})
}

func userParts(c *chatwire.Content) ([]part, error) {
	var ps []part
	err := outbound.UserParts(c, func(s string) { ps = append(ps, part{Text: s}) }, func(img outbound.Image) error {
		if img.URL != "" {
			ps = append(ps, part{FileData: &fileData{MimeType: img.MediaType, FileURI: img.URL}})
		} else {
			ps = append(ps, part{InlineData: &blob{MimeType: img.MediaType, Data: img.Data}})
		}
		return nil
	})
	return ps, err
}

// NewRequest implements outbound.Translator.
func (t *Translator) NewRequest(ctx context.Context, r *chatwire.Request) (*http.Request, error) {
	b, err := Body(r)
	if err != nil {
		return nil, err
	}
	key, err := t.Key.String()
	if err != nil {
		return nil, err
	}
	base := t.BaseURL
	if base == "" {
		base = "https://generativelanguage.googleapis.com"
	}
	model := strings.TrimPrefix(r.Model, "models/")
	u := strings.TrimRight(base, "/") + "/v1beta/models/" + url.PathEscape(model)
	if r.Stream {
		u += ":streamGenerateContent?alt=sse"
	} else {
		u += ":generateContent"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-goog-api-key", key)
	return req, nil
}

// FinishReason maps a finishReason.
func FinishReason(s string, calls bool) string {
	switch s {
	case "MAX_TOKENS":
		return chatwire.FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return chatwire.FinishContentFilter
	}
	if calls {
		return chatwire.FinishToolCalls
	}
	return chatwire.FinishStop
}

// Response implements outbound.Translator.
func (t *Translator) Response(body []byte, r *chatwire.Request) (*chatwire.Response, error) {
	var gr generateResponse
	if err := json.Unmarshal(body, &gr); err != nil {
		return nil, err
	}
	out := &chatwire.Response{ID: "chatcmpl-" + gr.ResponseID, Model: gr.ModelVersion}
	n := 0
	for _, c := range gr.Candidates {
		var calls []chatwire.ToolCall
		var text, thought strings.Builder
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					calls = append(calls, outbound.ToolCall(p.FunctionCall.callID(n), p.FunctionCall.Name, p.FunctionCall.Args))
					n++
				case p.Thought:
					thought.WriteString(p.Text)
				default:
					text.WriteString(p.Text)
				}
			}
		}
		msg := outbound.Answer(text.String(), thought.String(), calls)
		out.Choices = append(out.Choices, chatwire.Choice{Index: c.Index, Message: msg, FinishReason: FinishReason(c.FinishReason, len(msg.ToolCalls) > 0)})
	}
	if len(out.Choices) == 0 {
		// A prompt blocked by safety has no candidates.
		empty := ""
		out.Choices = []chatwire.Choice{{Message: chatwire.ResponseMessage{Role: "assistant", Content: &empty}, FinishReason: chatwire.FinishContentFilter}}
	}
	if gr.UsageMetadata != nil {
		out.Usage = gr.UsageMetadata.chat()
	}
	return out, nil
}

// Error implements outbound.Translator: {"error":{"code","message","status"}}.
func (t *Translator) Error(status int, body []byte) *openai.Error {
	var e []struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	// Gemini answers an object, and on some paths an array of one.
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] != '[' {
		body = append(append([]byte{'['}, b...), ']')
	}
	_ = json.Unmarshal(body, &e)
	if len(e) == 0 {
		return outbound.MapError(status, "", "")
	}
	return outbound.MapError(status, e[0].Error.Message, outbound.Clip(e[0].Error.Status))
}
