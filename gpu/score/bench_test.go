package score

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkScore(b *testing.B) {
	c, _ := Config{}.WithDefaults()
	r := full(0.6, 3, 0.8, 0.9, 2)
	var sink float64
	for b.Loop() {
		sink += Score(r, c)
	}
	_ = sink
}

// BenchmarkWeighterRound is one polling round of a 64-host pool: an
// Observe per host, a Tick and a Next.
func BenchmarkWeighterRound(b *testing.B) {
	const hosts = 64
	w, _ := NewWeighter(Config{})
	names := make([]string, hosts)
	for i := range names {
		names[i] = fmt.Sprintf("pool/gpu-%02d", i)
	}
	now := t0
	i := 0
	for b.Loop() {
		now = now.Add(time.Second)
		for h, n := range names {
			kv := float64((h*7+i)%100) / 100
			_ = w.Observe(n, kvReport(kv, now), now)
		}
		w.Tick(now)
		w.Next()
		i++
	}
}
