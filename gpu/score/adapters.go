package score

import (
	"slices"
	"time"
)

// LoRA is a report's account of LoRA adapters.
type LoRA struct {
	// Adapters are those of the requests the server is running or has
	// waiting, each once.
	Adapters []string `json:"adapters"`
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
// the L7 picker: the adapters of its running and waiting requests (Names,
// sorted), how many one batch may use (Max), and when the host measured
// them (At, on the poller's clock). Requests for an adapter in use there
// join its batches without waiting for a slot or loading the adapter.
type Adapters struct {
	Names []string  `json:"names,omitempty"`
	Max   int       `json:"max"`
	At    time.Time `json:"at"`
}

// Has reports whether name is among a's adapters.
func (a *Adapters) Has(name string) bool {
	_, ok := slices.BinarySearch(a.Names, name)
	return ok
}

// adaptersOf returns r's adapters, nil when r has none or they are out of
// bounds. The names are copied and sorted: the report may come off the
// wire in any order, and the picker searches them.
func adaptersOf(r Report) *Adapters {
	l := r.LoRA
	if l == nil || l.Max <= 0 || len(l.Adapters) > maxReportAdapters {
		return nil
	}
	a := &Adapters{Max: l.Max, At: r.Time}
	for _, n := range l.Adapters {
		if n == "" || len(n) > maxAdapterName {
			return nil
		}
		a.Names = append(a.Names, n)
	}
	slices.Sort(a.Names)
	a.Names = slices.Compact(a.Names)
	return a
}
