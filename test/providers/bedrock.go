package providers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Bedrock is a Converse / ConverseStream stand-in that verifies SigV4.
type Bedrock struct {
	recorder
	AccessKeyID, SecretAccessKey, Region string
	// Now is the server clock for the signature's date check.
	Now func() time.Time
}

// NewBedrock accepts requests signed with the given credentials.
func NewBedrock(akid, secret, region string) *Bedrock {
	return &Bedrock{AccessKeyID: akid, SecretAccessKey: secret, Region: region}
}

func bedrockError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-Errortype", typ)
	writeJSON(w, status, map[string]string{"message": msg})
}

// verifySigV4 recomputes the request's signature with the known secret by
// the same algorithm and compares.
func (b *Bedrock) verifySigV4(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("missing AWS4-HMAC-SHA256 authorization")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[0] != b.AccessKeyID || cred[2] != b.Region || cred[3] != "bedrock" || cred[4] != "aws4_request" {
		return fmt.Errorf("credential scope %q is not %s/…/%s/bedrock/aws4_request", fields["Credential"], b.AccessKeyID, b.Region)
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	if d := now.Sub(when); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("Signature expired")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != hash {
		return fmt.Errorf("x-amz-content-sha256 does not match the body")
	}
	// Rebuild the request as the client signed it: only the signed
	// headers, the same URL, body hash and time.
	u := &url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	re, _ := http.NewRequest(r.Method, u.String(), bytes.NewReader(body))
	re.Host = r.Host
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h == "host" {
			continue
		}
		if v := r.Header.Values(h); len(v) > 0 {
			re.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
	re.Header.Del("Authorization")
	creds := aws.Credentials{AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hash, "bedrock", b.Region, when); err != nil {
		return err
	}
	want := re.Header.Get("Authorization")
	if want != auth {
		return fmt.Errorf("The request signature we calculated does not match the signature you provided")
	}
	return nil
}

type bBlock struct {
	Text       *string         `json:"text,omitempty"`
	Image      *bImage         `json:"image,omitempty"`
	ToolUse    *bToolUse       `json:"toolUse,omitempty"`
	ToolResult *bToolResult    `json:"toolResult,omitempty"`
	Document   json.RawMessage `json:"document,omitempty"`
	CachePoint json.RawMessage `json:"cachePoint,omitempty"`
}

type bImage struct {
	Format string `json:"format"`
	Source struct {
		Bytes string `json:"bytes"`
	} `json:"source"`
}

type bToolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type bToolResult struct {
	ToolUseID string   `json:"toolUseId"`
	Content   []bBlock `json:"content"`
	Status    string   `json:"status,omitempty"`
}

type bRequest struct {
	Messages []struct {
		Role    string   `json:"role"`
		Content []bBlock `json:"content"`
	} `json:"messages"`
	System          []bBlock `json:"system,omitempty"`
	InferenceConfig *struct {
		MaxTokens     *int64   `json:"maxTokens,omitempty"`
		Temperature   *float64 `json:"temperature,omitempty"`
		TopP          *float64 `json:"topP,omitempty"`
		StopSequences []string `json:"stopSequences,omitempty"`
	} `json:"inferenceConfig,omitempty"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec struct {
				Name        string `json:"name"`
				Description string `json:"description,omitempty"`
				InputSchema struct {
					JSON json.RawMessage `json:"json"`
				} `json:"inputSchema"`
			} `json:"toolSpec"`
		} `json:"tools"`
		ToolChoice json.RawMessage `json:"toolChoice,omitempty"`
	} `json:"toolConfig,omitempty"`
}

func members(b bBlock) int {
	n := 0
	for _, set := range []bool{b.Text != nil, b.Image != nil, b.ToolUse != nil, b.ToolResult != nil, b.Document != nil, b.CachePoint != nil} {
		if set {
			n++
		}
	}
	return n
}

func checkBedrock(req *bRequest) error {
	if len(req.Messages) == 0 {
		return fmt.Errorf("1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	var prevUses map[string]bool
	for i, m := range req.Messages {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if m.Role != want {
			return fmt.Errorf("A conversation must alternate between user and assistant roles (messages.%d)", i)
		}
		if len(m.Content) == 0 {
			return fmt.Errorf("messages.%d.content: must not be empty", i)
		}
		uses := map[string]bool{}
		for j, b := range m.Content {
			if members(b) != 1 {
				return fmt.Errorf("messages.%d.content.%d: exactly one member of ContentBlock must be set", i, j)
			}
			switch {
			case b.Text != nil && *b.Text == "":
				return fmt.Errorf("messages.%d.content.%d: text must not be blank", i, j)
			case b.Image != nil:
				switch b.Image.Format {
				case "png", "jpeg", "gif", "webp":
				default:
					return fmt.Errorf("messages.%d.content.%d.image.format: invalid", i, j)
				}
				if _, err := base64.StdEncoding.DecodeString(b.Image.Source.Bytes); err != nil || b.Image.Source.Bytes == "" {
					return fmt.Errorf("messages.%d.content.%d.image.source.bytes: invalid base64", i, j)
				}
			case (b.ToolUse != nil || b.ToolResult != nil) && req.ToolConfig == nil:
				return fmt.Errorf("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
			case b.ToolUse != nil:
				if m.Role != "assistant" || b.ToolUse.ToolUseID == "" || b.ToolUse.Name == "" || len(b.ToolUse.Input) == 0 || b.ToolUse.Input[0] != '{' {
					return fmt.Errorf("messages.%d.content.%d.toolUse: invalid", i, j)
				}
				uses[b.ToolUse.ToolUseID] = true
			case b.ToolResult != nil:
				if m.Role != "user" || !prevUses[b.ToolResult.ToolUseID] {
					return fmt.Errorf("messages.%d.content.%d: toolResult does not match a toolUse of the previous turn", i, j)
				}
			}
		}
		prevUses = uses
	}
	if ic := req.InferenceConfig; ic != nil && ic.MaxTokens != nil && *ic.MaxTokens < 1 {
		return fmt.Errorf("inferenceConfig.maxTokens: must be at least 1")
	}
	if tc := req.ToolConfig; tc != nil {
		if len(tc.Tools) == 0 {
			return fmt.Errorf("toolConfig.tools: must not be empty")
		}
		for _, t := range tc.Tools {
			if t.ToolSpec.Name == "" || len(t.ToolSpec.InputSchema.JSON) == 0 {
				return fmt.Errorf("toolSpec: name and inputSchema.json are required")
			}
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (b *Bedrock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-Requestid", "standin-bedrock-request")
	path := r.URL.Path
	rest, ok := strings.CutPrefix(path, "/model/")
	model, op, ok2 := strings.Cut(rest, "/")
	if r.Method != http.MethodPost || !ok || !ok2 || (op != "converse" && op != "converse-stream") || model == "" {
		bedrockError(w, http.StatusNotFound, "UnknownOperationException", "unknown operation")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err := b.verifySigV4(r, body); err != nil {
		bedrockError(w, http.StatusForbidden, "InvalidSignatureException", err.Error())
		return
	}
	var req bRequest
	if err := strictDecode(body, &req); err != nil {
		bedrockError(w, http.StatusBadRequest, "ValidationException", err.Error())
		return
	}
	if err := checkBedrock(&req); err != nil {
		bedrockError(w, http.StatusBadRequest, "ValidationException", err.Error())
		return
	}
	rep := b.accept(r, body, realistic("bedrock", bedrockFirstTool(&req), bedrockAnswered(&req), false, body))
	if rep.Status != 0 && rep.Status != 200 {
		typ := map[int]string{429: "ThrottlingException", 400: "ValidationException", 500: "InternalServerException", 503: "ServiceUnavailableException", 404: "ResourceNotFoundException"}[rep.Status]
		bedrockError(w, rep.Status, typ, rep.ErrorMessage)
		return
	}
	stop := rep.Stop
	if stop == "" {
		stop = "end_turn"
		if len(rep.Calls) > 0 {
			stop = "tool_use"
		}
	}
	usage := map[string]int64{"inputTokens": rep.Usage.Input, "outputTokens": rep.Usage.Output, "totalTokens": rep.Usage.Input + rep.Usage.Output}
	if rep.Usage.CacheRead > 0 || rep.Usage.CacheWrite > 0 {
		usage["cacheReadInputTokens"] = rep.Usage.CacheRead
		usage["cacheWriteInputTokens"] = rep.Usage.CacheWrite
	}
	if op == "converse" {
		var content []map[string]any
		if rep.Reasoning != "" {
			content = append(content, map[string]any{"reasoningContent": map[string]any{"reasoningText": map[string]string{"text": rep.Reasoning}}})
		}
		if rep.Text != "" {
			content = append(content, map[string]any{"text": rep.Text})
		}
		for _, c := range rep.Calls {
			content = append(content, map[string]any{"toolUse": map[string]any{"toolUseId": c.ID, "name": c.Name, "input": json.RawMessage(c.Args)}})
		}
		writeJSON(w, 200, map[string]any{"output": map[string]any{"message": map[string]any{"role": "assistant", "content": content}},
			"stopReason": stop, "usage": usage, "metrics": map[string]int{"latencyMs": 12}})
		return
	}
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	n := 0
	send := func(event string, v any) bool {
		if rep.BreakAfter > 0 && n >= rep.BreakAfter {
			return false
		}
		n++
		p, _ := json.Marshal(v)
		_, _ = w.Write(EncodeEvent([][2]string{{":event-type", event}, {":content-type", "application/json"}, {":message-type", "event"}}, p))
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	if !send("messageStart", map[string]string{"role": "assistant", "p": "abcd"}) {
		return
	}
	idx := 0
	if rep.Reasoning != "" {
		send("contentBlockDelta", map[string]any{"contentBlockIndex": idx, "delta": map[string]any{"reasoningContent": map[string]string{"text": rep.Reasoning}}})
		send("contentBlockStop", map[string]any{"contentBlockIndex": idx})
		idx++
	}
	if rep.Text != "" {
		for _, p := range pieces(rep.Text, rep.Pieces) {
			if !send("contentBlockDelta", map[string]any{"contentBlockIndex": idx, "delta": map[string]string{"text": p}}) {
				return
			}
		}
		send("contentBlockStop", map[string]any{"contentBlockIndex": idx})
		idx++
	}
	for _, c := range rep.Calls {
		send("contentBlockStart", map[string]any{"contentBlockIndex": idx, "start": map[string]any{"toolUse": map[string]string{"toolUseId": c.ID, "name": c.Name}}})
		for _, p := range pieces(c.Args, 2) {
			send("contentBlockDelta", map[string]any{"contentBlockIndex": idx, "delta": map[string]any{"toolUse": map[string]string{"input": p}}})
		}
		send("contentBlockStop", map[string]any{"contentBlockIndex": idx})
		idx++
	}
	if !send("messageStop", map[string]string{"stopReason": stop}) {
		return
	}
	send("metadata", map[string]any{"usage": usage, "metrics": map[string]int{"latencyMs": 12}})
}

// EncodeEvent frames one event-stream message with string headers:
// prelude (total and headers length, their CRC32), headers, payload and
// the message CRC32.
func EncodeEvent(headers [][2]string, payload []byte) []byte {
	var hb []byte
	for _, h := range headers {
		hb = append(hb, byte(len(h[0])))
		hb = append(hb, h[0]...)
		hb = append(hb, 7) // string
		hb = binary.BigEndian.AppendUint16(hb, uint16(len(h[1])))
		hb = append(hb, h[1]...)
	}
	total := 12 + len(hb) + len(payload) + 4
	m := make([]byte, 0, total)
	m = binary.BigEndian.AppendUint32(m, uint32(total))
	m = binary.BigEndian.AppendUint32(m, uint32(len(hb)))
	m = binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m[:8]))
	m = append(m, hb...)
	m = append(m, payload...)
	return binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
}

// bedrockFirstTool is the tool an unscripted model calls: the one
// toolChoice names, else the first offered.
func bedrockFirstTool(req *bRequest) string {
	if req.ToolConfig == nil || len(req.ToolConfig.Tools) == 0 {
		return ""
	}
	var choice struct {
		Tool *struct {
			Name string `json:"name"`
		} `json:"tool"`
	}
	if json.Unmarshal(req.ToolConfig.ToolChoice, &choice) == nil && choice.Tool != nil {
		return choice.Tool.Name
	}
	return req.ToolConfig.Tools[0].ToolSpec.Name
}

// bedrockAnswered says the conversation holds a toolResult.
func bedrockAnswered(req *bRequest) bool {
	for _, m := range req.Messages {
		for _, b := range m.Content {
			if b.ToolResult != nil {
				return true
			}
		}
	}
	return false
}
