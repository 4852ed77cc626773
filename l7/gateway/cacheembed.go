package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
	"unicode/utf8"
)

// Bounds of the semantic cache's embeddings call.
const (
	defaultEmbedTimeout = 2 * time.Second
	// maxEmbedText bounds the text sent to be embedded: a long message is
	// matched on its start.
	maxEmbedText = 8 << 10
	// maxEmbedResponse bounds the embeddings answer read.
	maxEmbedResponse = 1 << 20
)

// embedder embeds the last user message through the gateway's own
// embeddings model (spec.gateway.cache.semantic.embeddingsModel): its
// first route, the backend picked as for any request, over the same
// transports. A failure is a cache miss, not a failed request; the call
// is not billed to the tenant.
type embedder struct {
	model      string
	timeout    time.Duration
	maxEntries int
}

func (e *embedder) embed(x *exchange, text string) []float32 {
	if len(text) > maxEmbedText {
		text = text[:maxEmbedText]
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	rm, ok := x.cfg.routes.Lookup(e.model)
	if !ok {
		return nil
	}
	plan := rm.Plan(nil, 0)
	if len(plan) == 0 {
		return nil
	}
	rt := plan[0]
	var base string
	if b := x.cfg.routes.Backend(rt); b != nil {
		base = b.BaseURL
		defer b.Acquire()()
	} else if rt.Provider != nil {
		base = rt.Provider.BaseURL
	} else {
		return nil
	}
	model := rt.UpstreamModel
	if model == "" {
		model = rm.Name
	}
	body, err := json.Marshal(struct {
		Model string `json:"model"`
		Input string `json:"input"`
	}{model, text})
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(x.r.Context(), e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-request-id", x.id)
	req.Header.Set(hopsHeader, hopValues[x.hops])
	if rt.Provider != nil && rt.Provider.Key() != "" {
		req.Header.Set("Authorization", "Bearer "+rt.Provider.Key())
	}
	resp, err := x.upstreamTransport(rt).RoundTrip(req)
	if err != nil {
		x.g.log.Debug("semantic cache: embeddings call failed", "request", x.id, "err", err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUpstreamErrorBytes))
		x.g.log.Debug("semantic cache: embeddings call refused", "request", x.id, "status", resp.StatusCode)
		return nil
	}
	var out struct {
		Data []struct {
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxEmbedResponse)).Decode(&out); err != nil || len(out.Data) != 1 {
		return nil
	}
	return out.Data[0].Embedding
}
