package pick

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/route"
)

func benchPrompts() [][]byte {
	prompts := make([][]byte, 64)
	for i := range prompts {
		unit := fmt.Sprintf("system prompt %02d: answer briefly. ", i)
		sys := strings.Repeat(unit, 6144/len(unit)+1)[:6144]
		prompts[i] = []byte(sys + strings.Repeat("u", 2048))
	}
	return prompts
}

// BenchmarkPickModelNoAdapters is BenchmarkPickPrefix through PickModel
// with no adapters in the reports: what every gateway request now pays
// for the adapter check (compare with BenchmarkPickPrefix).
func BenchmarkPickModelNoAdapters(b *testing.B) {
	bs, p := benchPool(b)
	prompts := benchPrompts()
	i := 0
	for b.Loop() {
		_ = p.PickModel("p", "m", bs, prompts[i%len(prompts)])
		i++
	}
}

// BenchmarkPickModelAdapter: the same with every backend reporting four
// adapters, and requests for 16 adapters in rotation.
func BenchmarkPickModelAdapter(b *testing.B) {
	bs := backends(&testing.T{}, 8)
	ws := score.Weights{}
	for i, bk := range bs {
		var run []string
		for k := range 4 {
			run = append(run, fmt.Sprintf("lora-%02d", (2*i+k)%16))
		}
		ws["p/"+bk.Name] = score.Weight{Weight: uint32(50 + 20*i), Adapters: lora(4, run...)}
	}
	p, err := New(Config{Weights: fixed(ws)})
	if err != nil {
		b.Fatal(err)
	}
	pickAdapters(b, p, bs)
}

// BenchmarkPickModelAdapterDraining: BenchmarkPickModelAdapter with an
// adapter waiting for a slot on every backend for long, so every backend
// is being drained (adapter_drain.go).
func BenchmarkPickModelAdapterDraining(b *testing.B) {
	bs := backends(&testing.T{}, 8)
	ws := score.Weights{}
	for i, bk := range bs {
		a := lora(4)
		for k := range 4 {
			a.Running = append(a.Running, fmt.Sprintf("lora-%02d", (2*i+k)%16))
		}
		slices.Sort(a.Running)
		a.Waiting = []string{fmt.Sprintf("lora-%02d", (2*i+5)%16)}
		ws["p/"+bk.Name] = score.Weight{Weight: uint32(50 + 20*i), Adapters: a}
	}
	p, err := New(Config{Weights: fixed(ws)})
	if err != nil {
		b.Fatal(err)
	}
	pickAdapters(b, p, bs)
	drained := 0
	for _, d := range p.drain {
		drained += len(d.victims)
	}
	if drained == 0 {
		b.Fatal("no backend drained: the benchmark measures the wrong path")
	}
}

// pickAdapters picks for the 16 adapters lora-00 to lora-15 in turn, with
// the benchmark prompts, until the benchmark ends.
func pickAdapters(b *testing.B, p *Picker, bs []*route.Backend) {
	prompts := benchPrompts()
	adapters := make([]string, 16)
	for k := range adapters {
		adapters[k] = fmt.Sprintf("lora-%02d", k)
	}
	i := 0
	for b.Loop() {
		_ = p.PickModel("p", adapters[i%len(adapters)], bs, prompts[i%len(prompts)])
		i++
	}
}
