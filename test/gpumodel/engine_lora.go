package gpumodel

import "slices"

// LoRA adapters: a batch may use at most Spec.MaxLoras adapters, an
// adapter not loaded is loaded first (Spec.AdapterLoad), and the engine
// lists the adapters of its running and waiting requests as vLLM's
// lora_requests_info does.

// adapterFits reports whether a request of adapter a may join the batch:
// the base model always may; an adapter may while the running requests
// use fewer than MaxLoras adapters, or already use it.
func (e *Engine[C]) adapterFits(a int) bool {
	if a == 0 || e.Spec.MaxLoras <= 0 {
		return true
	}
	n := 0
	var seen [64]int
	distinct := seen[:0]
	for _, r := range e.running {
		if r.Adapter == 0 {
			continue
		}
		if r.Adapter == a {
			return true
		}
		found := false
		for _, d := range distinct {
			if d == r.Adapter {
				found = true
				break
			}
		}
		if !found {
			distinct = append(distinct, r.Adapter)
			n++
		}
	}
	return n < e.Spec.MaxLoras
}

// useAdapter marks a as most recently used among the loaded adapters and
// reports whether it had to be loaded.
func (e *Engine[C]) useAdapter(a int) bool {
	if a == 0 || e.Spec.MaxLoras <= 0 {
		return false
	}
	for i, x := range e.loras {
		if x == a {
			copy(e.loras[1:i+1], e.loras[:i])
			e.loras[0] = a
			return false
		}
	}
	if len(e.loras) < e.Spec.MaxLoras {
		e.loras = append(e.loras, 0)
	}
	copy(e.loras[1:], e.loras[:len(e.loras)-1])
	e.loras[0] = a
	e.AdapterLoads++
	return true
}

// Loaded reports whether adapter a is loaded (what vLLM's
// lora_requests_info metric shows as running or waiting adapters).
func (e *Engine[C]) Loaded(a int) bool {
	for _, x := range e.loras {
		if x == a {
			return true
		}
	}
	return false
}

// Adapters lists the adapters of the running and waiting requests (vLLM's
// lora_requests_info: running_lora_adapters and waiting_lora_adapters),
// each once.
func (e *Engine[C]) Adapters() []int { return adaptersIn(e.running, e.waiting) }

// RunningAdapters and WaitingAdapters list the adapters of the running and
// of the waiting requests, each once (lora_requests_info's
// running_lora_adapters and waiting_lora_adapters).
func (e *Engine[C]) RunningAdapters() []int { return adaptersIn(e.running) }

// WaitingAdapters: see RunningAdapters.
func (e *Engine[C]) WaitingAdapters() []int { return adaptersIn(e.waiting) }

// adaptersIn lists the adapters of the requests in qs, each once.
func adaptersIn[C any](qs ...[]*Request[C]) []int {
	var out []int
	for _, q := range qs {
		for _, r := range q {
			if r.Adapter != 0 && !slices.Contains(out, r.Adapter) {
				out = append(out, r.Adapter)
			}
		}
	}
	return out
}
