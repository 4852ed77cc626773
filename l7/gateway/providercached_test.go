package gateway

import (
	"math"
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/providers"
)

// TestUntranslatedProviderCachedPrice: an azure-openai provider (reached
// without translation) reporting cache reads in
// prompt_tokens_details.cached_tokens is billed at its cached-input price,
// whole and streamed, as the translated kinds are.
func TestUntranslatedProviderCachedPrice(t *testing.T) {
	s := newStandIns(t)
	s.list[3].Models = []policy.ProviderModel{{Name: "gpt4o-deploy", InputPerMTok: 2, CachedInputPerMTok: 0.5, OutputPerMTok: 8}}
	s.azure.Always(providers.Reply{Text: "cached answer", Usage: providers.Usage{Input: 100, CacheRead: 300, Output: 10}})
	h := newHarness(t, providerPolicy(s), Options{Getenv: standInEnv})
	want := (100*2 + 300*0.5 + 10*8) / 1e6
	for _, extra := range []string{"", `,"stream":true,"stream_options":{"include_usage":true}`} {
		if st, _, b := h.call(testKey, "/v1/chat/completions", kindBody("via-azure", extra)); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		if r := h.last(); r.PromptTokens != 400 || r.CompletionTokens != 10 || math.Abs(r.CostUSD-want) > 1e-12 {
			t.Fatalf("stream=%v: audit %+v, want cost %g", extra != "", r, want)
		}
	}
}
