package gateway

import (
	"testing"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/mockllm"
)

// BenchmarkCache: one deterministic chat request through the gateway with
// no cache configured (the peer: upstream every time) and answered from the
// cache, whole and streamed (replayed as SSE).
func BenchmarkCache(b *testing.B) {
	body := chatBody("Summarise what a response cache saves.", `,"temperature":0,"max_tokens":16`)
	b.Run("off", func(b *testing.B) {
		m := newMock(b, mockllm.Config{})
		postParallel(b, newHarness(b, basePolicy(pool("p", m)), Options{}), body)
	})
	b.Run("hit", func(b *testing.B) {
		m := newMock(b, mockllm.Config{})
		h := newHarness(b, cachePolicy(m, policy.ResponseCache{}), Options{})
		h.call(testKey, "/v1/chat/completions", body)
		postParallel(b, h, body)
		if n := m.Stats().Total; n != 1 {
			b.Fatalf("%d upstream requests, want 1", n)
		}
	})
	b.Run("hit-stream", func(b *testing.B) {
		m := newMock(b, mockllm.Config{})
		h := newHarness(b, cachePolicy(m, policy.ResponseCache{}), Options{})
		sbody := chatBody("Summarise what a response cache saves.", `,"temperature":0,"max_tokens":16,"stream":true`)
		h.call(testKey, "/v1/chat/completions", sbody)
		postParallel(b, h, sbody)
	})
}
