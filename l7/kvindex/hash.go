package kvindex

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/infergate/infergate/l7/tokens"
)

// Bounds on the blocks hashed per request.
const (
	// DefaultMaxBlocks: 512 blocks of 16 tokens is an 8k-token prefix,
	// enough to tell apart where long shared prompts are cached, and it
	// bounds the request path's tokenizing and hashing (about 0.1 ms per
	// 4 KB of prompt, BenchmarkPromptHashes).
	DefaultMaxBlocks = 512
	maxBlockSize     = 1 << 10
)

// Hasher turns a prompt into the block hashes an engine publishes for it:
// the prompt's token ids (tiktoken's, l7/tokens) cut into blocks of
// BlockSize, each hashed as vLLM's sha256_cbor_64bit hashes a block (and
// llm-d's kv-cache-manager reproduces it): the low 64 bits, big-endian,
// of SHA-256 over the canonical CBOR of the array [parent hash, [token
// ids], null], with the first block's parent the low 64 bits of SHA-256
// over the CBOR text string of the hash seed (vLLM's NONE_HASH from
// PYTHONHASHSEED). A trailing partial block is not hashed; engines cache
// only full blocks.
type Hasher struct {
	blockSize int
	maxBlocks int
	seed      uint64
	enc       *tokens.Counter
}

// NewHasher returns a Hasher for blocks of blockSize tokens of encoding
// (tokens.CL100K or tokens.O200K), with the engine's hash seed.
func NewHasher(blockSize int, seed, encoding string, maxBlocks int) (*Hasher, error) {
	if blockSize < 1 || blockSize > maxBlockSize {
		return nil, fmt.Errorf("kvindex: block size %d outside [1, %d]", blockSize, maxBlockSize)
	}
	if maxBlocks == 0 {
		maxBlocks = DefaultMaxBlocks
	}
	if maxBlocks < 1 || maxBlocks > 1<<16 {
		return nil, fmt.Errorf("kvindex: max blocks %d outside [1, 65536]", maxBlocks)
	}
	enc, err := tokens.Get(encoding)
	if err != nil {
		return nil, fmt.Errorf("kvindex: %w", err)
	}
	return &Hasher{blockSize: blockSize, maxBlocks: maxBlocks, seed: SeedHash(seed), enc: enc}, nil
}

// BlockSize is the tokens per block.
func (h *Hasher) BlockSize() int { return h.blockSize }

// Tokens returns prompt's token ids, at most the blocks' worth hashed.
func (h *Hasher) Tokens(dst []uint32, prompt string) []uint32 {
	dst, _ = h.enc.AppendTokens(dst, prompt, h.maxBlocks*h.blockSize)
	return dst
}

// Hashes returns the chained hashes of prompt's full blocks.
func (h *Hasher) Hashes(prompt string) []uint64 {
	return h.Chain(nil, h.Tokens(nil, prompt))
}

// Chain appends the chained hashes of toks' full blocks to dst.
func (h *Hasher) Chain(dst []uint64, toks []uint32) []uint64 {
	return ChainBlocks(dst, h.seed, toks, h.blockSize)
}

// ChainBlocks appends the chained hashes of toks' full blocks of
// blockSize, the first chained to parent.
func ChainBlocks(dst []uint64, parent uint64, toks []uint32, blockSize int) []uint64 {
	var buf []byte
	for i := 0; i+blockSize <= len(toks); i += blockSize {
		buf = appendBlockCBOR(buf[:0], parent, toks[i:i+blockSize])
		parent = low64(sha256.Sum256(buf))
		dst = append(dst, parent)
	}
	return dst
}

// SeedHash is the first block's parent for a hash seed.
func SeedHash(seed string) uint64 {
	b := appendCBORHead(nil, 3, uint64(len(seed)))
	return low64(sha256.Sum256(append(b, seed...)))
}

func low64(sum [32]byte) uint64 { return binary.BigEndian.Uint64(sum[24:]) }

// appendBlockCBOR appends the canonical CBOR of [parent, [toks...], null].
func appendBlockCBOR(b []byte, parent uint64, toks []uint32) []byte {
	b = append(b, 0x83) // array of 3
	b = appendCBORHead(b, 0, parent)
	b = appendCBORHead(b, 4, uint64(len(toks)))
	for _, t := range toks {
		b = appendCBORHead(b, 0, uint64(t))
	}
	return append(b, 0xf6) // null: no extra keys
}

// appendCBORHead appends a CBOR head of major type major and argument v
// in its shortest form (RFC 8949 §4.2.1, which canonical encoding asks).
func appendCBORHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= 0xff:
		return append(b, m|24, byte(v))
	case v <= 0xffff:
		return append(b, m|25, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, m|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, m|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
