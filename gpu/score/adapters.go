package score

import (
	"slices"
	"time"
)

// LoRA is a report's account of LoRA adapters (vLLM's lora_requests_info).
type LoRA struct {
	// Running are the adapters of the requests in the running batch,
	// Waiting those of the requests queued, each once per list.
	Running []string `json:"running"`
	Waiting []string `json:"waiting"`
	// Max is how many adapters one batch may use (vLLM's --max-loras).
	Max int `json:"max"`
}

// Bounds on a report's adapters: a list past them is a malformed report,
// and its adapters are taken as unknown.
const (
	maxReportAdapters = 256
	maxAdapterName    = 256
)

// Adapters is what a host's last report said about its LoRA adapters, for
// the L7 picker: the adapters of its running and of its waiting requests
// (sorted), how many one batch may use (Max), and when the host measured
// them (At, on the poller's clock). A request for an adapter in the
// running batch joins it without waiting for a slot or loading the
// adapter; one waiting while the batch has Max adapters waits for a slot.
type Adapters struct {
	Running []string  `json:"running,omitempty"`
	Waiting []string  `json:"waiting,omitempty"`
	Max     int       `json:"max"`
	At      time.Time `json:"at"`
}

// IsRunning reports whether name is among the running batch's adapters.
func (a *Adapters) IsRunning(name string) bool {
	_, ok := slices.BinarySearch(a.Running, name)
	return ok
}

// IsWaiting reports whether name is among the waiting requests' adapters.
func (a *Adapters) IsWaiting(name string) bool {
	_, ok := slices.BinarySearch(a.Waiting, name)
	return ok
}

// Has reports whether name is running or waiting.
func (a *Adapters) Has(name string) bool { return a.IsRunning(name) || a.IsWaiting(name) }

// InUse is how many distinct adapters are running or waiting.
func (a *Adapters) InUse() int {
	n := len(a.Running)
	for _, w := range a.Waiting {
		if !a.IsRunning(w) {
			n++
		}
	}
	return n
}

// adaptersOf returns r's adapters, nil when r has none or they are out of
// bounds. The names are copied and sorted: the report may come off the
// wire in any order, and the picker searches them.
func adaptersOf(r Report) *Adapters {
	l := r.LoRA
	if l == nil || l.Max <= 0 || len(l.Running)+len(l.Waiting) > maxReportAdapters {
		return nil
	}
	a := &Adapters{Max: l.Max, At: r.Time}
	var ok bool
	if a.Running, ok = sortedNames(l.Running); !ok {
		return nil
	}
	if a.Waiting, ok = sortedNames(l.Waiting); !ok {
		return nil
	}
	return a
}

// sortedNames copies names sorted and once each; false if one is empty or
// too long.
func sortedNames(names []string) ([]string, bool) {
	var out []string
	for _, n := range names {
		if n == "" || len(n) > maxAdapterName {
			return nil, false
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), true
}
