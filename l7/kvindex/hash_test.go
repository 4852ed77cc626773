package kvindex

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/infergate/infergate/l7/tokens"
)

// reference is llm-d kv-cache-manager's block hash, written with a general
// CBOR library in canonical mode as llm-d writes it: low 64 bits of
// SHA-256 over CBOR([parent, tokens, nil]).
func reference(t *testing.T, parent uint64, toks []uint32) uint64 {
	t.Helper()
	em, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal([]any{parent, toks, nil})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[24:])
}

// The hand-written CBOR gives the library's bytes for every head width
// (token ids and parents across 0..2^64), so the chain equals llm-d's.
func TestChainMatchesCBORLibrary(t *testing.T) {
	em, _ := cbor.CanonicalEncOptions().EncMode()
	for _, seed := range []string{"", "0", "a hash seed of more than twenty-three bytes"} {
		b, _ := em.Marshal(seed)
		sum := sha256.Sum256(b)
		if got, want := SeedHash(seed), binary.BigEndian.Uint64(sum[24:]); got != want {
			t.Fatalf("seed %q: %x, want %x", seed, got, want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	toks := make([]uint32, 64)
	widths := []uint32{0, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1}
	for i := range toks {
		if i < len(widths) {
			toks[i] = widths[i]
		} else {
			toks[i] = r.Uint32() >> r.IntN(32)
		}
	}
	for _, parent := range []uint64{0, 23, 24, 1 << 8, 1 << 16, 1 << 32, 1<<64 - 1, SeedHash("")} {
		got := ChainBlocks(nil, parent, toks, 16)
		p := parent
		for k := range 4 {
			p = reference(t, p, toks[16*k:16*k+16])
			if got[k] != p {
				t.Fatalf("parent %x block %d: %x, want %x", parent, k, got[k], p)
			}
		}
	}
	// A trailing partial block is not hashed.
	if n := len(ChainBlocks(nil, 0, toks[:40], 16)); n != 2 {
		t.Fatalf("%d blocks of 40 tokens", n)
	}
}

// Hashes tokenizes with the encoding and chains from the seed: two prompts
// sharing their first 32 tokens share exactly two block hashes, and
// another seed shares none.
func TestHasherPrefix(t *testing.T) {
	h, err := NewHasher(16, "", tokens.CL100K, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := tokens.Get(tokens.CL100K)
	words := ""
	for i := range 60 {
		words += " w" + string(rune('a'+i%26))
	}
	toks, _ := enc.AppendTokens(nil, words, 1<<20)
	if len(toks) < 40 {
		t.Fatalf("%d tokens", len(toks))
	}
	a := h.Hashes(words + " and then one ending that goes on for a while longer")
	b := h.Hashes(words + " but another, different ending, also long enough")
	common := 0
	for common < min(len(a), len(b)) && a[common] == b[common] {
		common++
	}
	if common != len(toks)/16 {
		t.Fatalf("common blocks %d, want %d", common, len(toks)/16)
	}
	if want := ChainBlocks(nil, SeedHash(""), toks[:32], 16); !slices.Equal(a[:2], want) {
		t.Fatal("Hashes differs from ChainBlocks over the encoder's ids")
	}
	h2, _ := NewHasher(16, "42", tokens.CL100K, 0)
	if h2.Hashes(words)[0] == a[0] {
		t.Fatal("seed ignored")
	}
	for _, bad := range []int{0, -1, 1 << 11} {
		if _, err := NewHasher(bad, "", tokens.CL100K, 0); err == nil {
			t.Errorf("block size %d accepted", bad)
		}
	}
	if _, err := NewHasher(16, "", "p50k_base", 0); err == nil {
		t.Error("unknown encoding accepted")
	}
}
