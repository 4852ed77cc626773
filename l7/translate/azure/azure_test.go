package azure

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/test/providers"
)

// TestDeploymentAndKey: the upstream model names the deployment, the
// api-version is sent, and the key goes as api-key (or a bearer token);
// the answer, whole or streamed, passes through as OpenAI's.
func TestDeploymentAndKey(t *testing.T) {
	for _, bearer := range []bool{false, true} {
		s := providers.NewAzure("az-key", bearer, "gpt4o-prod")
		ts := httptest.NewServer(s)
		defer ts.Close()
		rt := &Transport{BaseURL: ts.URL, APIVersion: "2024-10-21", Key: outbound.StaticSecret("az-key"), Bearer: bearer, Base: http.DefaultTransport}
		s.Always(providers.Reply{Text: "hi", Usage: providers.Usage{Input: 3, Output: 1}})
		st, cr := providers.Whole(t, rt, `{"model":"gpt4o-prod","messages":[{"role":"user","content":"x"}]}`)
		if st != 200 || *cr.Choices[0].Message.Content != "hi" || cr.Usage.PromptTokens != 3 {
			t.Fatalf("bearer %v: %d %+v", bearer, st, cr)
		}
		_, h, path := s.Last()
		if path != "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21" || bearer && h.Get("Api-Key") != "" {
			t.Fatal(path, h)
		}
		s.Always(providers.Reply{Text: "streamed text", Pieces: 3, Usage: providers.Usage{Input: 3, Output: 2}})
		if st, res := providers.Stream(t, rt, `{"model":"gpt4o-prod","stream":true,"messages":[{"role":"user","content":"x"}]}`); st != 200 || res.Text != "streamed text" || !res.Done {
			t.Fatalf("%d %+v", st, res)
		}
		if st, _ := providers.Whole(t, rt, `{"model":"no-such-deployment","messages":[{"role":"user","content":"x"}]}`); st != 404 {
			t.Fatal(st)
		}
	}
}

// TestWrongKey: Azure's 401 reaches the gateway (which answers its client
// a 502: its own credential failed).
func TestWrongKey(t *testing.T) {
	s := providers.NewAzure("az-key", false, "d")
	ts := httptest.NewServer(s)
	defer ts.Close()
	rt := &Transport{BaseURL: ts.URL, Key: outbound.StaticSecret("nope"), Base: http.DefaultTransport}
	if st, _ := providers.Whole(t, rt, `{"model":"d","messages":[{"role":"user","content":"x"}]}`); st != 401 {
		t.Fatal(st)
	}
}
