package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"

	"github.com/infergate/infergate/policy"
)

// AI traffic through the GPU hosts' L7 gateways: two tenants with API keys,
// a price, a tokens-per-minute limit on one of them and a secret-blocking
// inspection rule. The demo and the monitoring test both use it.

// AITenant is a tenant of the lab's gateway and its one API key.
type AITenant struct {
	Name string
	Key  string
	// TokensPerMinute limits the tenant (0: unlimited).
	TokensPerMinute uint64
}

// Lab gateway settings.
const (
	// AIModel is the model the mock inference servers serve.
	AIModel = "mock-model"
	// AIInputPerMTok and AIOutputPerMTok price it in USD per million tokens.
	AIInputPerMTok  = 3.0
	AIOutputPerMTok = 15.0
	// SecretRule is the inspection rule that blocks cloud keys in prompts.
	SecretRule = "no-cloud-keys"
)

// AIGateway is a spec.gateway section serving AIModel from the GPU hosts'
// own inference servers (pool gpu-v4) to the tenants given.
func AIGateway(tenants ...AITenant) *policy.Gateway {
	g := &policy.Gateway{
		Listen: fmt.Sprintf(":%d", GatewayPort),
		Models: []policy.Model{{Name: AIModel, Encoding: "o200k_base",
			Price:  policy.Price{InputPerMTok: AIInputPerMTok, OutputPerMTok: AIOutputPerMTok},
			Routes: []policy.Route{{Pool: "gpu-v4", Weight: 100}}, Retries: 1}},
		Inspection: policy.Inspection{Rules: []policy.InspectionRule{
			{Name: SecretRule, Detector: "cloud-key", Action: "block"}}},
	}
	for _, t := range tenants {
		g.Tenants = append(g.Tenants, policy.Tenant{Name: t.Name, Limits: policy.Limits{TokensPerMinute: t.TokensPerMinute}})
		sum := sha256.Sum256([]byte(t.Key))
		g.Keys = append(g.Keys, policy.APIKey{Name: t.Name + "-key", Tenant: t.Name, Hash: "sha256:" + hex.EncodeToString(sum[:])})
	}
	return g
}

// GatewayURL is the chat completions URL of the gateways behind VIP4.
func GatewayURL() string {
	return fmt.Sprintf("http://%s/v1/chat/completions", netip.AddrPortFrom(VIP4, GatewayPort))
}

// AIResult is what the gateway answered to one chat request.
type AIResult struct {
	Status int
	// PromptTokens and CompletionTokens from the response's usage (the
	// final chunk of a stream).
	PromptTokens, CompletionTokens int
	// ErrorCode is OpenAI's error.code of a refused request.
	ErrorCode string
	// Backend is the GPU host whose inference server answered.
	Backend string
}

// AIChat sends one chat completion with prompt as the user message, streamed
// (with usage in the last chunk) or not, and reads the whole answer.
func AIChat(ctx context.Context, c *http.Client, url, key, prompt string, stream bool, maxTokens int) (AIResult, error) {
	doc := map[string]any{
		"model": AIModel, "stream": stream, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	}
	if stream {
		doc["stream_options"] = map[string]bool{"include_usage": true}
	}
	body, _ := json.Marshal(doc)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return AIResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return AIResult{}, err
	}
	defer resp.Body.Close()
	r := AIResult{Status: resp.StatusCode, Backend: resp.Header.Get(BackendHeader)}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		_ = json.Unmarshal(b, &e)
		r.ErrorCode = e.Error.Code
		return r, nil
	}
	var usage struct {
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if !stream {
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&usage); err != nil {
			return r, fmt.Errorf("decode the answer: %w", err)
		}
	} else {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), maxBody)
		done := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if line == "[DONE]" {
				done = true
				break
			}
			var chunk struct {
				Usage json.RawMessage `json:"usage"`
			}
			if json.Unmarshal([]byte(line), &chunk) == nil && len(chunk.Usage) > 0 && string(chunk.Usage) != "null" {
				_ = json.Unmarshal([]byte(line), &usage)
			}
		}
		if !done {
			return r, fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
		}
	}
	if usage.Usage != nil {
		r.PromptTokens, r.CompletionTokens = usage.Usage.PromptTokens, usage.Usage.CompletionTokens
	}
	return r, nil
}
