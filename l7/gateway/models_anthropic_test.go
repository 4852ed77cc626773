package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/infergate/infergate/test/mockllm"
)

// TestModelsAnthropicShape: GET /v1/models and /v1/models/{id} with
// anthropic-version (as Anthropic's SDKs send) answer Anthropic's model
// page and objects, and their errors Anthropic's error shape; without it
// the answers keep OpenAI's shape.
func TestModelsAnthropicShape(t *testing.T) {
	h := newHarness(t, basePolicy(pool("p", newMock(t, mockllm.Config{}))), Options{})
	get := func(path, key string, anthropic bool) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+path, nil)
		req.Header.Set("x-api-key", key)
		if anthropic {
			req.Header.Set("anthropic-version", "2023-06-01")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %q: %v", path, b, err)
		}
		return resp.StatusCode, m
	}
	st, page := get("/v1/models", testKey, true)
	data, _ := page["data"].([]any)
	if st != 200 || len(data) == 0 || page["has_more"] != false || page["object"] != nil {
		t.Fatalf("anthropic list: %d %v", st, page)
	}
	first, _ := data[0].(map[string]any)
	last, _ := data[len(data)-1].(map[string]any)
	if first["type"] != "model" || first["id"] == "" || first["display_name"] != first["id"] || first["created_at"] != modelsCreatedAt ||
		page["first_id"] != first["id"] || page["last_id"] != last["id"] {
		t.Fatalf("anthropic list: %v", page)
	}
	id := first["id"].(string)
	if st, m := get("/v1/models/"+id, testKey, true); st != 200 || m["type"] != "model" || m["id"] != id || m["object"] != nil {
		t.Fatalf("anthropic retrieve: %d %v", st, m)
	}
	for _, c := range []struct {
		path, key, typ string
		status         int
	}{{"/v1/models/no-such-model", testKey, "not_found_error", 404}, {"/v1/models", "sk-wrong-key-000000000000", "authentication_error", 401}} {
		st, m := get(c.path, c.key, true)
		e, _ := m["error"].(map[string]any)
		if st != c.status || m["type"] != "error" || e == nil || e["type"] != c.typ {
			t.Fatalf("anthropic %s: %d %v", c.path, st, m)
		}
	}
	if st, m := get("/v1/models", testKey, false); st != 200 || m["object"] != "list" || m["has_more"] != nil {
		t.Fatalf("openai list: %d %v", st, m)
	}
	if st, m := get("/v1/models/"+id, testKey, false); st != 200 || m["object"] != "model" {
		t.Fatalf("openai retrieve: %d %v", st, m)
	}
}
