package mockllm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"
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

// writeEmbeddings answers an embeddings request with Embed of each input,
// as floats or base64.
func (s *Server) writeEmbeddings(w http.ResponseWriter, req *request, model string, prompt int) {
	var inputs []json.RawMessage
	if len(req.Input) > 0 && req.Input[0] == '[' {
		if err := json.Unmarshal(req.Input, &inputs); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "input must be a string or an array")
			return
		}
	} else {
		inputs = []json.RawMessage{req.Input}
	}
	if len(inputs) > maxEmbeddingInputs {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "too many inputs")
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "encoding_format must be float or base64")
		return
	}
	data := make([]any, len(inputs))
	for i, in := range inputs {
		var text string
		if err := json.Unmarshal(in, &text); err != nil {
			text = string(in) // token arrays: embedded by their JSON
		}
		vec := Embed(text)
		var emb any = vec
		if req.EncodingFormat == "base64" {
			emb = base64Embedding(vec)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	resp := map[string]any{"object": "list", "data": data, "model": model}
	if !s.cfg.OmitUsage {
		resp["usage"] = map[string]int{"prompt_tokens": prompt, "total_tokens": prompt}
	}
	b, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// base64Embedding is OpenAI's base64 form of an embedding: the vector as
// little-endian float32s, base64-encoded.
func base64Embedding(vec []float64) string {
	b := make([]byte, 4*len(vec))
	for i, v := range vec {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
	}
	return base64.StdEncoding.EncodeToString(b)
}
