package sim

import (
	"math"
	"strconv"

	"github.com/infergate/infergate/gpu/score"
)

// The simulated agent's load report: what a GPU host's agent would send
// the gateway about engine i, through the same score.Report the real
// agent builds.

// report is what engine i's agent measures at now: the vLLM metrics
// (running, waiting, KV-cache usage, and the cache's size from
// cache_config_info), SM utilisation as the busy fraction since the last
// report, and the GPU model from NVML.
func (s *runner) report(i int, now float64) score.Report {
	e := s.engines[i]
	busy := e.BusyTime(now)
	util := (busy - s.lastBusy[i]) / s.cfg.ReportInterval
	s.lastBusy[i] = busy
	return score.Report{
		Host:            s.view.Backends[i],
		Time:            simTime(now),
		Healthy:         true,
		Signals:         score.HasKVCache | score.HasWaiting | score.HasRunning | score.HasUtil | score.HasKVTokens,
		KVCacheUsage:    e.KVUsage(),
		RequestsRunning: float64(e.Running()),
		RequestsWaiting: float64(e.Waiting()),
		SMUtil:          math.Min(math.Max(util, 0), 1),
		KVCacheTokens:   float64(e.KVCapacity()),
		Capacity:        score.CapacityForModel(e.Spec.Name),
		GPUModel:        e.Spec.Name,
		GPUs:            1,
		LoRA:            loraOf(e),
	}
}

// loraOf is what e's lora_requests_info says, as the agent reports it:
// the adapters of its running and of its waiting requests and its
// max-loras; nil
// for an engine without adapters.
func loraOf(e *Engine) *score.LoRA {
	if e.Spec.MaxLoras <= 0 {
		return nil
	}
	l := &score.LoRA{Max: e.Spec.MaxLoras, Running: []string{}, Waiting: []string{}}
	for _, a := range e.RunningAdapters() {
		l.Running = append(l.Running, AdapterName(a))
	}
	for _, a := range e.WaitingAdapters() {
		l.Waiting = append(l.Waiting, AdapterName(a))
	}
	return l
}

// AdapterName is the model name under which the engines serve adapter a
// (vLLM serves each LoRA adapter as a model name).
func AdapterName(a int) string { return "lora-" + strconv.Itoa(a) }
