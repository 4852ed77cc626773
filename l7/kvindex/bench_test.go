package kvindex

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/kvevents"
)

// benchPrompt is about 4 KB of chat prompt (some 900 tokens, 56 blocks).
var benchPrompt = "\x1esystem\x1f" + strings.Repeat("You are a careful assistant; answer briefly and cite the sources you use. ", 40) +
	"\x1euser\x1fWhat changed in the last release?"

// The request path's added cost for a pool with kvEvents: tokenizing the
// prompt and chaining its block hashes.
func BenchmarkPromptHashes(b *testing.B) {
	h, err := NewHasher(16, "", "cl100k_base", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchPrompt)))
	b.ReportAllocs()
	for b.Loop() {
		if len(h.Hashes(benchPrompt)) == 0 {
			b.Fatal("no blocks")
		}
	}
}

// Matching 56 blocks against 8 backends, each holding a different part.
func BenchmarkMatch(b *testing.B) {
	h, _ := NewHasher(16, "", "cl100k_base", 0)
	hashes := h.Hashes(benchPrompt)
	x, _ := New(Config{})
	names := make([]string, 8)
	for i := range names {
		names[i] = fmt.Sprintf("p/b%d", i)
		x.Up(names[i])
		x.Apply(names[i], 0, &kvevents.Batch{Events: []kvevents.Event{{Kind: kvevents.BlockStored, Hashes: hashes[:len(hashes)*(i+1)/8]}}})
	}
	out := make([]int, len(names))
	b.ReportAllocs()
	for b.Loop() {
		x.Match(hashes, names, out)
	}
	if out[7] != len(hashes) {
		b.Fatalf("match %v", out)
	}
}

// The peer: counting the same prompt's tokens, which the gateway already
// does for every request (l7/tokens' fast path).
func BenchmarkPromptCountPeer(b *testing.B) {
	h, _ := NewHasher(16, "", "cl100k_base", 0)
	b.SetBytes(int64(len(benchPrompt)))
	b.ReportAllocs()
	for b.Loop() {
		if h.enc.Count(benchPrompt) == 0 {
			b.Fatal("no tokens")
		}
	}
}
