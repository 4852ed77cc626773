package mockllm

import (
	"hash/fnv"
	"math"
	"strings"
)

// Embed is the mock's deterministic embedding of text: character trigrams
// of the lower-cased text (padded with spaces), each hashed into one of
// embeddingDims buckets with a sign, the vector scaled to unit length. Texts
// that share most trigrams (a paraphrase that keeps most words) are close in
// cosine similarity; unrelated texts are not. No model, no randomness.
func Embed(text string) []float64 {
	vec := make([]float64, embeddingDims)
	r := []rune(" " + strings.ToLower(text) + " ")
	for i := 0; i+3 <= len(r); i++ {
		h := fnv.New32a()
		_, _ = h.Write([]byte(string(r[i : i+3])))
		v := h.Sum32()
		sign := 1.0
		if v&(1<<31) != 0 {
			sign = -1
		}
		vec[int(v%embeddingDims)] += sign
	}
	var sum float64
	for _, x := range vec {
		sum += x * x
	}
	if sum == 0 {
		vec[0] = 1
		return vec
	}
	n := math.Sqrt(sum)
	for i := range vec {
		vec[i] /= n
	}
	return vec
}
