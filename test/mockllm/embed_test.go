package mockllm

import "testing"

func cosine(a, b []float64) float64 {
	var d float64
	for i := range a {
		d += a[i] * b[i]
	}
	return d
}

// TestEmbedSimilarity: the mock's embeddings put a paraphrase closer to its
// original than an unrelated text, and the same text always at the same
// point (the semantic cache's tests rely on both).
func TestEmbedSimilarity(t *testing.T) {
	a := Embed("What is the capital city of France?")
	para := Embed("what is the capital city of france")
	other := Embed("Write a haiku about autumn leaves falling")
	if s := cosine(a, Embed("What is the capital city of France?")); s < 0.9999 {
		t.Fatalf("same text: similarity %v", s)
	}
	sp, so := cosine(a, para), cosine(a, other)
	t.Logf("paraphrase %.3f, unrelated %.3f", sp, so)
	if sp < 0.9 || so > 0.5 {
		t.Fatalf("paraphrase %.3f (want >= 0.9), unrelated %.3f (want <= 0.5)", sp, so)
	}
}
