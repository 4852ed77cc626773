// Package bedrock translates chat completions to Amazon Bedrock's Converse
// and ConverseStream APIs (POST /model/{modelId}/converse and
// /converse-stream), signed with SigV4 by the AWS SDK for Go v2's signer,
// and their answers back, reading ConverseStream's AWS event-stream binary
// framing (eventstream.go) one message at a time (see
// l7/translate/outbound).
//
// System and developer messages become system blocks; tool messages become
// toolResult blocks of a user turn, consecutive ones merged (Converse wants
// roles to alternate); images must be base64 data: URLs (Converse takes
// image bytes, not URLs).
package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// Service is the SigV4 signing name of Bedrock's runtime.
const Service = "bedrock"

// Translator speaks Converse.
type Translator struct {
	// BaseURL is the runtime endpoint (default
	// https://bedrock-runtime.<region>.amazonaws.com).
	BaseURL     string
	Region      string
	Credentials CredentialSource
	// Now is the signing clock (time.Now when nil).
	Now func() time.Time

	mu     sync.Mutex
	signer *v4.Signer
	secret string // the secret signer's key cache was made with
}

// signerFor returns a signer whose derived-key cache belongs to creds'
// secret. The SDK's cache is keyed by access key id, service, region and
// day, not by the secret: a secret rotated under the same key id would be
// signed with the old derived key until midnight, so a changed secret
// gets a fresh signer.
func (t *Translator) signerFor(creds aws.Credentials) *v4.Signer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.signer == nil || t.secret != creds.SecretAccessKey {
		t.signer, t.secret = v4.NewSigner(), creds.SecretAccessKey
	}
	return t.signer
}

// CredentialSource gives the current AWS credentials.
type CredentialSource interface {
	Credentials() (aws.Credentials, error)
}

// ProviderName implements outbound.Translator.
func (*Translator) ProviderName() string { return "aws.bedrock" }

type converseRequest struct {
	Messages        []message        `json:"messages"`
	System          []contentBlock   `json:"system,omitempty"`
	InferenceConfig *inferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig      *toolConfig      `json:"toolConfig,omitempty"`
}

type message struct {
	Role    string         `json:"role"`
	Content []contentBlock `json:"content"`
}

type contentBlock struct {
	Text             *string           `json:"text,omitempty"`
	Image            *imageBlock       `json:"image,omitempty"`
	ToolUse          *toolUse          `json:"toolUse,omitempty"`
	ToolResult       *toolResult       `json:"toolResult,omitempty"`
	ReasoningContent *reasoningContent `json:"reasoningContent,omitempty"`
}

type imageBlock struct {
	Format string `json:"format"`
	Source struct {
		Bytes string `json:"bytes"`
	} `json:"source"`
}

type toolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type toolResult struct {
	ToolUseID string         `json:"toolUseId"`
	Content   []contentBlock `json:"content"`
}

type reasoningContent struct {
	ReasoningText *struct {
		Text string `json:"text"`
	} `json:"reasoningText,omitempty"`
}

type inferenceConfig struct {
	MaxTokens     int64    `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type toolConfig struct {
	Tools      []toolEntry     `json:"tools"`
	ToolChoice json.RawMessage `json:"toolChoice,omitempty"`
}

type toolEntry struct {
	ToolSpec toolSpec `json:"toolSpec"`
}

type toolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	InputSchema struct {
		JSON json.RawMessage `json:"json"`
	} `json:"inputSchema"`
}

type converseResponse struct {
	Output struct {
		Message *message `json:"message"`
	} `json:"output"`
	StopReason string `json:"stopReason"`
	Usage      usage  `json:"usage"`
}

type usage struct {
	InputTokens           int64 `json:"inputTokens"`
	OutputTokens          int64 `json:"outputTokens"`
	TotalTokens           int64 `json:"totalTokens"`
	CacheReadInputTokens  int64 `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int64 `json:"cacheWriteInputTokens"`
}

func (u *usage) chat() *chatwire.Usage {
	return chatwire.NewUsage(u.InputTokens+u.CacheReadInputTokens+u.CacheWriteInputTokens, u.OutputTokens, u.CacheReadInputTokens, 0)
}

var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// Body is the Converse request body for r (exported for tests and fuzzing).
func Body(r *chatwire.Request) ([]byte, error) {
	var cr converseRequest
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case "system", "developer":
			if s := m.Content.JoinedText(); s != "" {
				cr.System = append(cr.System, contentBlock{Text: &s})
			}
		case "user":
			bs, err := userBlocks(&m.Content)
			if err != nil {
				return nil, err
			}
			cr.Messages = appendTurn(cr.Messages, "user", bs...)
		case "assistant":
			var bs []contentBlock
			m.Content.Texts(func(s string) { bs = append(bs, contentBlock{Text: &s}) })
			for _, tc := range m.ToolCalls {
				in, err := outbound.CallInput(tc.Function.Arguments)
				if err != nil {
					return nil, err
				}
				bs = append(bs, contentBlock{ToolUse: &toolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: in}})
			}
			if len(bs) == 0 {
				continue
			}
			cr.Messages = appendTurn(cr.Messages, "assistant", bs...)
		case "tool":
			if m.ToolCallID == "" {
				return nil, outbound.Invalid("a tool message needs tool_call_id")
			}
			s := m.Content.JoinedText()
			cr.Messages = appendTurn(cr.Messages, "user", contentBlock{ToolResult: &toolResult{ToolUseID: m.ToolCallID, Content: []contentBlock{{Text: &s}}}})
		default:
			return nil, outbound.Invalid("unknown message role " + outbound.Clip(m.Role))
		}
	}
	if len(cr.Messages) == 0 {
		return nil, outbound.Invalid("the request has no user or assistant message")
	}
	if lim := r.Limit(); lim > 0 || r.Temperature != nil || r.TopP != nil || len(r.Stop) > 0 {
		cr.InferenceConfig = &inferenceConfig{MaxTokens: lim, Temperature: r.Temperature, TopP: r.TopP, StopSequences: r.Stop}
	}
	tc, err := r.ParseToolChoice()
	if err != nil {
		return nil, outbound.Invalid(err.Error())
	}
	// Converse has no "none" choice, and refuses toolUse and toolResult
	// blocks without a toolConfig: with "none" the tools are left out
	// unless the conversation already holds tool blocks.
	if len(r.Tools) > 0 && (tc.Mode != "none" || hasToolBlocks(cr.Messages)) {
		cr.ToolConfig = &toolConfig{}
		for _, tl := range r.Tools {
			if tl.Type != "function" && tl.Type != "" {
				return nil, outbound.Invalid("only function tools can be sent to this provider")
			}
			ts := toolSpec{Name: tl.Function.Name, Description: tl.Function.Description}
			ts.InputSchema.JSON = tl.Function.Parameters
			if len(bytes.TrimSpace(ts.InputSchema.JSON)) == 0 || bytes.Equal(bytes.TrimSpace(ts.InputSchema.JSON), []byte("null")) {
				ts.InputSchema.JSON = emptySchema
			}
			cr.ToolConfig.Tools = append(cr.ToolConfig.Tools, toolEntry{ToolSpec: ts})
		}
		switch tc.Mode {
		case "required":
			cr.ToolConfig.ToolChoice = json.RawMessage(`{"any":{}}`)
		case "function":
			b, _ := json.Marshal(map[string]any{"tool": map[string]string{"name": tc.Name}})
			cr.ToolConfig.ToolChoice = b
		}
	}
	if err := applyStructured(&cr, r); err != nil {
		return nil, err
	}
	return json.Marshal(&cr)
}

func hasToolBlocks(ms []message) bool {
	for _, m := range ms {
		for _, b := range m.Content {
			if b.ToolUse != nil || b.ToolResult != nil {
				return true
			}
		}
	}
	return false
}

func appendTurn(ms []message, role string, bs ...contentBlock) []message {
	if n := len(ms); n > 0 && ms[n-1].Role == role {
		ms[n-1].Content = append(ms[n-1].Content, bs...)
		return ms
	}
	return append(ms, message{Role: role, Content: bs})
}

func userBlocks(c *chatwire.Content) ([]contentBlock, error) {
	var bs []contentBlock
	err := outbound.UserParts(c, func(s string) { bs = append(bs, contentBlock{Text: &s}) }, func(img outbound.Image) error {
		if img.URL != "" {
			return outbound.Invalid("this provider takes images as base64 data: URLs only")
		}
		ib := &imageBlock{Format: img.Format()}
		ib.Source.Bytes = img.Data
		bs = append(bs, contentBlock{Image: ib})
		return nil
	})
	return bs, err
}

// NewRequest implements outbound.Translator: the Converse (or
// ConverseStream) request, SigV4-signed.
func (t *Translator) NewRequest(ctx context.Context, r *chatwire.Request) (*http.Request, error) {
	b, err := Body(r)
	if err != nil {
		return nil, err
	}
	creds, err := t.Credentials.Credentials()
	if err != nil {
		return nil, err
	}
	base := t.BaseURL
	if base == "" {
		base = "https://bedrock-runtime." + t.Region + ".amazonaws.com"
	}
	op := "/converse"
	if r.Stream {
		op = "/converse-stream"
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + "/model/" + url.PathEscape(r.Model) + op)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r.Stream {
		req.Header.Set("Accept", "application/vnd.amazon.eventstream")
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if err := t.signerFor(creds).SignHTTP(ctx, creds, req, hash, Service, t.Region, now()); err != nil {
		return nil, err
	}
	return req, nil
}

// FinishReason maps a stopReason.
func FinishReason(s string) string {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return chatwire.FinishLength
	case "tool_use":
		return chatwire.FinishToolCalls
	case "guardrail_intervened", "content_filtered":
		return chatwire.FinishContentFilter
	}
	return chatwire.FinishStop
}

// Response implements outbound.Translator.
func (t *Translator) Response(body []byte, r *chatwire.Request) (*chatwire.Response, error) {
	var cr converseResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		return nil, err
	}
	var calls []chatwire.ToolCall
	var text, reasoning strings.Builder
	structured := outbound.Structured(r)
	finish := FinishReason(cr.StopReason)
	if cr.Output.Message != nil {
		for _, b := range cr.Output.Message.Content {
			switch {
			case structured && b.ToolUse != nil && b.ToolUse.Name == outbound.StructuredTool:
				// The forced schema tool's input is the JSON answer.
				text.Write(b.ToolUse.Input)
				if finish == chatwire.FinishToolCalls {
					finish = chatwire.FinishStop
				}
			case b.Text != nil:
				text.WriteString(*b.Text)
			case b.ToolUse != nil:
				calls = append(calls, outbound.ToolCall(b.ToolUse.ToolUseID, b.ToolUse.Name, b.ToolUse.Input))
			case b.ReasoningContent != nil && b.ReasoningContent.ReasoningText != nil:
				reasoning.WriteString(b.ReasoningContent.ReasoningText.Text)
			}
		}
	}
	msg := outbound.Answer(text.String(), reasoning.String(), calls)
	return &chatwire.Response{ID: "chatcmpl-bedrock", Model: r.Model, Choices: []chatwire.Choice{{Message: msg, FinishReason: finish}},
		Usage: cr.Usage.chat()}, nil
}

// Error implements outbound.Translator: {"message": ...} with the
// exception's name in X-Amzn-Errortype (not seen here) or "__type".
func (t *Translator) Error(status int, body []byte) *openai.Error {
	var e struct {
		Message  string `json:"message"`
		MessageU string `json:"Message"`
		Type     string `json:"__type"`
	}
	_ = json.Unmarshal(body, &e)
	if e.Message == "" {
		e.Message = e.MessageU
	}
	code := e.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	return outbound.MapError(status, e.Message, outbound.Clip(code))
}
