package pick

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/route"
)

func benchPool(b *testing.B) ([]*route.Backend, *Picker) {
	bs := backends(&testing.T{}, 8)
	ws := score.Weights{}
	for i, bk := range bs {
		ws["p/"+bk.Name] = score.Weight{Weight: uint32(50 + 20*i)}
	}
	p, err := New(Config{Weights: fixed(ws)})
	if err != nil {
		b.Fatal(err)
	}
	return bs, p
}

// BenchmarkPick: weighted power of two choices over 8 backends.
func BenchmarkPick(b *testing.B) {
	bs, p := benchPool(b)
	for b.Loop() {
		_ = p.Pick("p", bs)
	}
}

// BenchmarkPickPrefix: an 8 KiB prompt (6 KiB shared system prompt, 2
// KiB of its own) over 8 backends, 64 system prompts in rotation.
func BenchmarkPickPrefix(b *testing.B) {
	bs, p := benchPool(b)
	prompts := make([][]byte, 64)
	for i := range prompts {
		unit := fmt.Sprintf("system prompt %02d: answer briefly. ", i)
		sys := strings.Repeat(unit, 6144/len(unit)+1)[:6144]
		prompts[i] = []byte(sys + strings.Repeat("u", 2048))
	}
	i := 0
	for b.Loop() {
		_ = p.PickPrefix("p", bs, prompts[i%len(prompts)])
		i++
	}
}

// BenchmarkPowerOfTwo is the route package's default choice, the peer.
func BenchmarkPowerOfTwo(b *testing.B) {
	bs, _ := benchPool(b)
	for b.Loop() {
		_ = route.PowerOfTwo(bs)
	}
}

// BenchmarkPickColdLong: a cold 32,000-token prompt (2,000 blocks) over 8
// backends that all have prompt tokens queued, so the short lane's second
// pass runs on every pick.
func BenchmarkPickColdLong(b *testing.B) {
	bs, p := benchPool(b)
	for i, bk := range bs {
		bk.AddPending(int64(40_000 + 1000*i))
	}
	hashes := make([]uint64, 2000)
	for i := range hashes {
		hashes[i] = uint64(i) + 1
	}
	i := uint64(0)
	for b.Loop() {
		i++
		hashes[0] = i << 32 // a first block no backend holds: cold
		_ = p.PickBlocks("p", bs, hashes)
	}
}
