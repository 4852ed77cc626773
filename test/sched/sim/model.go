// Package sim is a discrete-event simulation of a heterogeneous GPU
// inference fleet behind a load balancer, for the scheduling-quality
// benchmark: it runs the real weighting code (gpu/score), the real Maglev
// builder (maglev) and the real prefix-affinity chooser (l7/affinity)
// against round robin and least connections on identical arrivals.
//
// The fleet model is a roofline model of vLLM-style continuous batching:
// every engine step reads the model weights once plus the KV cache of every
// decoding sequence (memory-bandwidth bound), and prefills a chunk of prompt
// tokens (compute bound); a step takes the larger of the two plus a fixed
// scheduling overhead. Numbers come from data sheets and the model's shape;
// see the constants below and BENCHMARKS.md.
package sim

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
	free := s.MemoryBytes*GPUMemoryUtilization - WeightBytes - s.ReservedBytes
	return int(math.Max(free, 0) / KVBytesPerToken)
}

// StepTime is the roofline duration of one engine step that decodes one
// token for each of decodeSeqs sequences whose contexts total kvTokens, and
// prefills prefillTokens prompt tokens.
func (s Spec) StepTime(decodeSeqs, kvTokens, prefillTokens int) float64 {
	mem := (WeightBytes + float64(kvTokens)*KVBytesPerToken) / (s.BandwidthBytesPerSec * MemEfficiency)
	compute := float64(decodeSeqs+prefillTokens) * FLOPsPerToken / (s.PeakFLOPS * ComputeEfficiency)
	return StepOverhead + math.Max(mem, compute)
}
