package gateway

import (
	"bytes"
	"encoding/json"
)

// Providers reached without translation (openai, azure-openai) report
// cache reads in OpenAI's usage.prompt_tokens_details.cached_tokens, which
// the gateway's usage parser skips and no translating transport meters.
// For a route priced by its provider's table the gateway reads that one
// field here, so those cache reads are billed at the cached-input price as
// the translated kinds' are; routes without a provider price never pay for
// the extra look.

var promptDetailsKey = []byte(`"prompt_tokens_details"`)

// meterCached fills the meter's cached tokens from an OpenAI-shaped answer
// or usage chunk b, unless a translating transport already did.
func (x *exchange) meterCached(b []byte) {
	if x.providerPrice == nil || x.meter.CachedTokens != 0 {
		return
	}
	i := bytes.LastIndex(b, promptDetailsKey)
	if i < 0 {
		return
	}
	rest := bytes.TrimLeft(b[i+len(promptDetailsKey):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return
	}
	var d struct {
		CachedTokens int64 `json:"cached_tokens"`
	}
	if json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&d) == nil && d.CachedTokens > 0 {
		x.meter.CachedTokens = d.CachedTokens
	}
}
