package scrape

import (
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// vLLM's LoRA info gauge. Its labels are running_lora_adapters and
// waiting_lora_adapters (adapter names, comma-separated, empty when none)
// and max_lora (the engine's --max-loras: how many adapters one batch may
// use); its value is the time the engine last set it. Every distinct set
// of labels is a new series that stays in the payload, so only the series
// with the latest time is current (the Inference Extension's metrics
// reader reads it the same way).
const (
	vllmLoRAInfo        = "vllm:lora_requests_info"
	vllmLoRARunning     = "running_lora_adapters"
	vllmLoRAWaiting     = "waiting_lora_adapters"
	vllmLoRAMax         = "max_lora"
	maxLoRAAdapters     = 256  // names kept from one payload
	maxLoRANameBytes    = 256  // bytes of one adapter name
	maxLoRALimit        = 4096 // largest max_lora taken as real
	maxLoRALabelBytes   = maxLoRAAdapters * (maxLoRANameBytes + 1)
	maxLoRALimitLabelSz = 8
)

// loraInfo reads the current series of a lora_requests_info family: the
// adapters of the running and of the waiting requests (each list sorted,
// each name once) and max_lora. A current series that is malformed (a label missing or too
// long, max_lora not a positive integer, too many names) makes the family
// count as absent: a partial list would say an adapter is not there when
// it is.
func loraInfo(f *dto.MetricFamily) (running, waiting []string, maxLoRAs int, ok bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return nil, nil, 0, false
	}
	if t := f.GetType(); t != dto.MetricType_GAUGE && t != dto.MetricType_UNTYPED {
		return nil, nil, 0, false
	}
	var cur *dto.Metric
	latest := math.Inf(-1)
	for _, mt := range f.GetMetric() {
		var v float64
		switch {
		case mt.Gauge != nil:
			v = mt.GetGauge().GetValue()
		case mt.Untyped != nil:
			v = mt.GetUntyped().GetValue()
		default:
			continue
		}
		if finite(v) && v > latest {
			cur, latest = mt, v
		}
	}
	if cur == nil {
		return nil, nil, 0, false
	}
	var runList, waitList, limit string
	var haveR, haveW, haveM bool
	for _, l := range cur.GetLabel() {
		switch l.GetName() {
		case vllmLoRARunning:
			runList, haveR = l.GetValue(), true
		case vllmLoRAWaiting:
			waitList, haveW = l.GetValue(), true
		case vllmLoRAMax:
			limit, haveM = l.GetValue(), true
		}
	}
	if !haveR || !haveW || !haveM || len(runList) > maxLoRALabelBytes || len(waitList) > maxLoRALabelBytes || len(limit) > maxLoRALimitLabelSz {
		return nil, nil, 0, false
	}
	// max_lora 0 is an engine without LoRA serving (vLLM V0 prints the
	// gauge then too): nothing to steer by.
	n, err := strconv.Atoi(limit)
	if err != nil || n <= 0 || n > maxLoRALimit {
		return nil, nil, 0, false
	}
	if running, ok = names(runList); !ok {
		return nil, nil, 0, false
	}
	if waiting, ok = names(waitList); !ok {
		return nil, nil, 0, false
	}
	return running, waiting, n, true
}

// names splits a comma-separated list of adapter names, each once, sorted;
// false past the bounds.
func names(list string) ([]string, bool) {
	var out []string
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || slices.Contains(out, name) {
			continue
		}
		if len(name) > maxLoRANameBytes || len(out) >= maxLoRAAdapters {
			return nil, false
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, true
}
