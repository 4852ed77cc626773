// Package gpumodel is the one model of a GPU serving an LLM that the
// tests use: the scheduling simulation (test/sched/sim) steps it in
// virtual time, and the mock inference server (test/mockllm) runs it in
// real time behind real HTTP, so the live lab and the simulation see the
// same queueing, batching, KV-cache and prefix-cache behaviour.
//
// The model is a roofline model of vLLM-style continuous batching:
// every engine step reads the model weights once plus the KV cache of every
// decoding sequence (memory-bandwidth bound), and prefills a chunk of prompt
// tokens (compute bound); a step takes the larger of the two plus a fixed
// scheduling overhead. Numbers come from data sheets and the model's shape;
// see the constants below and BENCHMARKS.md.
package gpumodel

import "math"

// The served model: Llama-3.1-8B-Instruct in bf16, the size class that is
// served on both H100s and 24 GB cards, so a mixed pool is plausible.
const (
	// ModelParams: 8.03e9 parameters (Meta's model card).
	ModelParams = 8.03e9
	// WeightBytes: two bytes per bf16 parameter.
	WeightBytes = ModelParams * 2
	// KVBytesPerToken: 32 layers x 8 KV heads x 128 dims x (K and V) x 2
	// bytes = 131072 (grouped-query attention, config.json of the model).
	KVBytesPerToken = 32 * 8 * 128 * 2 * 2
	// FLOPsPerToken: a forward pass costs about 2 FLOPs per parameter per
	// token (Kaplan et al. 2020); attention adds little at these lengths.
	FLOPsPerToken = 2 * ModelParams
)

// Engine efficiencies and settings, shared by every GPU type.
const (
	// MemEfficiency: fraction of peak memory bandwidth a decode step
	// achieves, and StepOverhead the scheduler, sampling and launch cost
	// per step. Fitted to two public single-request measurements of this
	// model under vLLM (TestMatchesPublishedDecode): ~75 tokens/s on an
	// A100 40GB ("about 77% of the memory-bandwidth ceiling"; vLLM 0.23.0,
	// johnmusgrave.com/p/vllm-throughput-latency-sweep-on) and a 6.48 ms
	// median TPOT on an H100 80GB HBM3 (vLLM 0.21.0, InferenceBench's
	// concurrency-sweep recipe, yobitelcomm.github.io/bench). The model
	// gives 13.4 ms (74.6 tokens/s) and 6.5 ms.
	MemEfficiency = 0.8
	StepOverhead  = 0.0005
	// ComputeEfficiency (MFU) of prefill GEMMs: ~50% of dense peak.
	ComputeEfficiency = 0.5
	// MaxSeqs: vLLM's long-standing default max_num_seqs.
	MaxSeqs = 256
	// GPUMemoryUtilization: vLLM's default gpu_memory_utilization.
	GPUMemoryUtilization = 0.9
)

// Spec describes one GPU type.
type Spec struct {
	// Name is the simulated product, e.g. "NVIDIA H100 80GB HBM3"; the
	// gpu policy derives capacity from it with score.CapacityForModel,
	// as the real agent does from NVML's product name.
	Name string
	// MemoryBytes, BandwidthBytesPerSec, PeakFLOPS: data-sheet values.
	MemoryBytes          float64
	BandwidthBytesPerSec float64
	PeakFLOPS            float64
	// ReservedBytes: activations, CUDA graphs and allocator slack that
	// vLLM keeps besides weights and KV cache.
	ReservedBytes float64
	// MaxBatchedTokens is the chunked-prefill token budget per step.
	MaxBatchedTokens int
	// MaxSeqs bounds the batch (0: vLLM's default, MaxSeqs).
	MaxSeqs int
	// MaxLoras is how many LoRA adapters one batch may use (vLLM's
	// --max-loras; 0: adapters are not modelled) and AdapterLoad the
	// seconds a step spends loading one that is not loaded.
	MaxLoras    int
	AdapterLoad float64

	// FixedPrefill and FixedDecode, when either is set, replace the
	// roofline: a step that prefills takes FixedPrefill (the whole prompt
	// in one step, whatever its length), a step that only decodes takes
	// FixedDecode, and there is no memory model (the KV cache never runs
	// out; its usage is the batch's occupancy). The mock server's
	// -ttft and -tokens-per-s are such a GPU; both 0 with the other
	// fields empty is an instant one (Fixed).
	FixedPrefill, FixedDecode float64
}

// fixedKVTokens is the cache of a GPU with fixed timings: larger than any
// prompt the mock accepts, so it never limits admission.
const fixedKVTokens = 1 << 34

// Fixed reports whether s has fixed timings instead of a roofline (no
// memory bandwidth given).
func (s Spec) Fixed() bool { return s.BandwidthBytesPerSec == 0 }

// FixedTiming is a GPU with fixed timings: ttft seconds for a step that
// prefills, perToken seconds for one that only decodes, and a batch of
// seqs sequences.
func FixedTiming(ttft, perToken float64, seqs int) Spec {
	return Spec{Name: "fixed", FixedPrefill: ttft, FixedDecode: perToken, MaxSeqs: seqs, MaxBatchedTokens: fixedKVTokens}
}

// maxSeqs is the batch bound.
func (s Spec) maxSeqs() int {
	if s.MaxSeqs > 0 {
		return s.MaxSeqs
	}
	return MaxSeqs
}

// H100 is an H100 SXM 80GB: 3.35 TB/s HBM3, 989 TFLOPS dense bf16
// (NVIDIA H100 data sheet). vLLM V1 uses an 8192-token step budget for the
// OpenAI server on GPUs of this memory class (our reading of its engine
// arguments).
var H100 = Spec{
	Name:                 "NVIDIA H100 80GB HBM3",
	MemoryBytes:          80e9,
	BandwidthBytesPerSec: 3.35e12,
	PeakFLOPS:            989e12,
	ReservedBytes:        3e9,
	MaxBatchedTokens:     8192,
}

// A100 is an A100 40GB SXM: 1.555 TB/s HBM2, 312 TFLOPS dense bf16. Not
// in the benchmark's fleet; it anchors the model to a published
// measurement.
var A100 = Spec{
	Name:                 "NVIDIA A100-SXM4-40GB",
	MemoryBytes:          40e9,
	BandwidthBytesPerSec: 1.555e12,
	PeakFLOPS:            312e12,
	ReservedBytes:        2e9,
	MaxBatchedTokens:     2048,
}

// A10 is an NVIDIA A10 24GB: 600 GB/s GDDR6, 125 TFLOPS dense fp16 tensor
// (NVIDIA A10 data sheet). vLLM V1's budget for smaller GPUs is 2048.
var A10 = Spec{
	Name:                 "NVIDIA A10",
	MemoryBytes:          24e9,
	BandwidthBytesPerSec: 600e9,
	PeakFLOPS:            125e12,
	ReservedBytes:        1.5e9,
	MaxBatchedTokens:     2048,
}

// KVTokens is how many tokens of KV cache fit: vLLM sizes the cache as
// gpu_memory_utilization x memory minus weights and reserved memory.
// H100: ~403k tokens; A10: ~31k tokens.
func (s Spec) KVTokens() int {
	if s.Fixed() {
		return fixedKVTokens
	}
	free := s.MemoryBytes*GPUMemoryUtilization - WeightBytes - s.ReservedBytes
	return int(math.Max(free, 0) / KVBytesPerToken)
}

// StepTime is the roofline duration of one engine step that decodes one
// token for each of decodeSeqs sequences whose contexts total kvTokens, and
// prefills prefillTokens prompt tokens.
func (s Spec) StepTime(decodeSeqs, kvTokens, prefillTokens int) float64 {
	if s.Fixed() {
		t := 0.0
		if decodeSeqs > 0 {
			t = s.FixedDecode
		}
		if prefillTokens > 0 {
			t = max(t, s.FixedPrefill)
		}
		return t
	}
	mem := (WeightBytes + float64(kvTokens)*KVBytesPerToken) / (s.BandwidthBytesPerSec * MemEfficiency)
	compute := float64(decodeSeqs+prefillTokens) * FLOPsPerToken / (s.PeakFLOPS * ComputeEfficiency)
	return StepOverhead + math.Max(mem, compute)
}
