package sim

import "github.com/infergate/infergate/test/gpumodel"

// The simulated GPUs are gpumodel's, the same model the mock inference
// server runs in real time; these names keep the simulation's code and
// tests short.
type (
	Spec     = gpumodel.Spec
	Request  = gpumodel.Request[*Conn]
	Engine   = gpumodel.Engine[*Conn]
	BlockKey = gpumodel.BlockKey
)

// NewEngine returns an idle engine of spec.
func NewEngine(spec Spec, index int, prefixCaching bool) *Engine {
	return gpumodel.NewEngine[*Conn](spec, index, prefixCaching)
}

const (
	BlockTokens          = gpumodel.BlockTokens
	ModelParams          = gpumodel.ModelParams
	WeightBytes          = gpumodel.WeightBytes
	KVBytesPerToken      = gpumodel.KVBytesPerToken
	FLOPsPerToken        = gpumodel.FLOPsPerToken
	MemEfficiency        = gpumodel.MemEfficiency
	StepOverhead         = gpumodel.StepOverhead
	ComputeEfficiency    = gpumodel.ComputeEfficiency
	MaxSeqs              = gpumodel.MaxSeqs
	GPUMemoryUtilization = gpumodel.GPUMemoryUtilization
)

var (
	H100 = gpumodel.H100
	A100 = gpumodel.A100
	A10  = gpumodel.A10
)
