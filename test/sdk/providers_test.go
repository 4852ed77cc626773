package sdk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
	"github.com/infergate/infergate/test/providers"
)

// TestNodeSDKEveryProviderKind: the shipped binary ("infergate gateway -f")
// routes OpenAI's Node client to each provider kind's stand-in (anthropic
// with its key in a file, bedrock SigV4-signed with credentials from the
// environment, gemini, azure-openai): whole chats, streams with usage and
// tool calls come back as that SDK's results.
func TestNodeSDKEveryProviderKind(t *testing.T) {
	privtest.Tools(t, "node")
	root := repoRoot(t)
	modules := filepath.Join(root, "test", "sdk", "node", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "openai", "package.json")); err != nil {
		privtest.Skip(t, "the openai npm package is not installed (scripts/deps.sh test installs it): %v", err)
	}
	anth := providers.NewAnthropic("sk-ant-sdk")
	bed := providers.NewBedrock("AKIDSDK", "sdk/secret", "us-west-2")
	gem := providers.NewGemini("AIza-sdk")
	az := providers.NewAzure("az-sdk", false, "gpt4o")
	urls := map[string]string{}
	for name, s := range map[string]interface {
		providers.Scripted
		Script(func(map[string]any) providers.Reply)
	}{"claude": anth, "bedrock": bed, "gemini": gem, "azure": az} {
		s.Script(func(body map[string]any) providers.Reply {
			b, _ := json.Marshal(body)
			if strings.Contains(string(b), "Oslo") {
				return providers.Reply{Calls: []providers.Call{{ID: "call_1", Name: "get_weather", Args: `{"city":"Oslo"}`}}, Usage: providers.Usage{Input: 30, Output: 8}}
			}
			return providers.Reply{Text: "Hi from " + name + ".", Pieces: 3, Usage: providers.Usage{Input: 11, Output: 4}}
		})
		ts := httptest.NewServer(s.(http.Handler))
		t.Cleanup(ts.Close)
		urls[name] = ts.URL
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "anthropic-key")
	if err := os.WriteFile(keyFile, []byte("sk-ant-sdk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(key))
	pol := fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: sdk-providers
spec:
  gateway:
    tenants:
      - name: acme
    keys:
      - name: acme-sdk
        tenant: acme
        hash: sha256:%s
    providers:
      - {name: claude, kind: anthropic, baseURL: %q, apiKeyFile: %q}
      - {name: bedrock, kind: bedrock, baseURL: %q, region: us-west-2}
      - {name: gemini, kind: gemini, baseURL: %q, apiKeyEnv: SDK_GEMINI_KEY}
      - {name: azure, kind: azure-openai, baseURL: %q, apiKeyEnv: SDK_AZURE_KEY, apiVersion: "2024-10-21"}
    models:
      - {name: via-claude, routes: [{provider: claude, upstreamModel: claude-sonnet-4-5}]}
      - {name: via-bedrock, routes: [{provider: bedrock, upstreamModel: "anthropic.claude-3-haiku-20240307-v1:0"}]}
      - {name: via-gemini, routes: [{provider: gemini, upstreamModel: gemini-2.5-flash}]}
      - {name: via-azure, routes: [{provider: azure, upstreamModel: gpt4o}]}
`, hex.EncodeToString(sum[:]), urls["claude"], keyFile, urls["bedrock"], urls["gemini"], urls["azure"])
	gw := startGateway(t, root, dir, pol, "SDK_GEMINI_KEY=AIza-sdk", "SDK_AZURE_KEY=az-sdk", "AWS_ACCESS_KEY_ID=AKIDSDK", "AWS_SECRET_ACCESS_KEY=sdk/secret")
	listen := gw.listen

	models := []string{"via-claude", "via-bedrock", "via-gemini", "via-azure"}
	node := exec.Command("node", filepath.Join(root, "test", "sdk", "providers.mjs"))
	node.Env = append(os.Environ(), "IG_BASE_URL=http://"+listen+"/v1", "IG_KEY="+key, "IG_MODELS="+strings.Join(models, ","), "IG_NODE_MODULES="+modules)
	var stderr bytes.Buffer
	node.Stderr = &stderr
	out, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\ngateway log:\n%s", err, stderr.String(), gw.log.String())
	}
	var res map[string]result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	for _, m := range models {
		name := strings.TrimPrefix(m, "via-")
		var chat struct {
			Content, Finish string
			Usage           usage
		}
		if r := res[m+" chat"]; !r.OK || json.Unmarshal(r.Value, &chat) != nil || chat.Content != "Hi from "+name+"." || chat.Finish != "stop" || chat.Usage.PromptTokens != 11 || chat.Usage.CompletionTokens != 4 {
			t.Errorf("%s chat: %+v %s", m, r, r.Value)
		}
		var st struct {
			Content, Finish string
			Usage           *usage
			Chunks          int
		}
		if r := res[m+" stream"]; !r.OK || json.Unmarshal(r.Value, &st) != nil || st.Content != "Hi from "+name+"." || st.Finish != "stop" || st.Usage == nil || st.Usage.CompletionTokens != 4 || st.Chunks < 3 {
			t.Errorf("%s stream: %+v %s", m, r, r.Value)
		}
		var tl struct {
			Finish, Name string
			Args         map[string]string
		}
		if r := res[m+" tools"]; !r.OK || json.Unmarshal(r.Value, &tl) != nil || tl.Finish != "tool_calls" || tl.Name != "get_weather" || tl.Args["city"] != "Oslo" {
			t.Errorf("%s tools: %+v %s", m, r, r.Value)
		}
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.log.String())
	}
}
