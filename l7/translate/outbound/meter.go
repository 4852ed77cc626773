package outbound

import (
	"context"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Meter receives the usage details that chat-completions usage carries
// but the gateway's usage parser does not read (cache reads, reasoning),
// so that a provider's cached-input price can be applied. The transport
// fills it from the usage it translates, whole or streamed.
type Meter struct {
	CachedTokens    int64
	ReasoningTokens int64
}

type meterKey struct{}

// WithMeter returns ctx carrying m for the transport to fill.
func WithMeter(ctx context.Context, m *Meter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

func meterFrom(ctx context.Context) *Meter {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	return m
}

func (m *Meter) record(u *chatwire.Usage) {
	if m == nil || u == nil {
		return
	}
	m.CachedTokens, m.ReasoningTokens = 0, 0
	if u.PromptTokensDetails != nil {
		m.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	if u.CompletionTokensDetails != nil {
		m.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	}
}
