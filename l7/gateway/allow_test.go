package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// TestAllowLists: over HTTP, a key whose allow list leaves out a model or
// an endpoint gets 403 with the reason, no upstream call is made, and
// /v1/models lists only what the key may use; an unrestricted key is
// unaffected.
func TestAllowLists(t *testing.T) {
	m := newMock(t, mockllm.Config{})
	c := basePolicy(pool("p", m))
	big := c.Gateway.Models[0]
	big.Name, big.Aliases = "big-model", nil
	c.Gateway.Models = append(c.Gateway.Models, big)
	c.Gateway.Keys[0].Allow = policy.Allow{Models: []string{testModel}, Endpoints: []string{"/v1/chat/completions"}}
	h := newHarness(t, c, Options{})

	status, _, body := h.call(testKey, "/v1/chat/completions", `{"model":"big-model","messages":[{"role":"user","content":"hi"}]}`)
	if typ, code := decodeError(t, body); status != http.StatusForbidden || code != "model_not_allowed" || typ != "permission_error" {
		t.Fatalf("disallowed model: %d %s %s", status, typ, code)
	}
	status, _, body = h.call(testKey, "/v1/embeddings", `{"model":"`+testModel+`","input":"hi"}`)
	if _, code := decodeError(t, body); status != http.StatusForbidden || code != "endpoint_not_allowed" {
		t.Fatalf("disallowed endpoint: %d %s", status, code)
	}
	if n := len(m.Requests()); n != 0 {
		t.Fatalf("%d upstream requests for refused calls", n)
	}
	// The alias of an allowed model is allowed.
	if status, _, body := h.call(testKey, "/v1/chat/completions", `{"model":"mini","messages":[{"role":"user","content":"hi"}]}`); status != http.StatusOK {
		t.Fatalf("allowed model by alias: %d %s", status, body)
	}
	if status, _, body := h.call(otherKey, "/v1/chat/completions", `{"model":"big-model","messages":[{"role":"user","content":"hi"}]}`); status != http.StatusOK {
		t.Fatalf("unrestricted key: %d %s", status, body)
	}

	ids := func(key string) []string {
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var list modelList
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		var out []string
		for _, d := range list.Data {
			out = append(out, d.ID)
		}
		slices.Sort(out)
		return out
	}
	if got, want := ids(testKey), []string{testModel, "mini"}; !slices.Equal(got, want) {
		t.Errorf("restricted key lists %v, want %v", got, want)
	}
	if got := ids(otherKey); !slices.Contains(got, "big-model") {
		t.Errorf("unrestricted key lists %v", got)
	}
}
