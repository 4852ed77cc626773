package tokens

import (
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// worstCaseInputs are 2 MB texts that defeat the fast paths: random
// letters (one piece), random bytes (invalid UTF-8, long runs of U+FFFD
// and punctuation), a digit run (three-digit pieces) and white space (one
// piece).
var worstCaseInputs = func() []struct{ name, text string } {
	const n = 2 << 20
	in := longInputs(rand.New(rand.NewPCG(67, 71)), n)
	return []struct{ name, text string }{
		{"letters-2MB", in["lower"]},
		{"bytes-2MB", in["bytes"]},
		{"digits-2MB", in["digits"]},
		{"spaces-2MB", strings.Repeat(" ", n)},
	}
}()

// BenchmarkWorstCase counts each worst-case input and 4 KB of prose with
// the backtracking encoder (new) and with long pieces left to the heap
// merge, as before it (old), in the same run.
func BenchmarkWorstCase(b *testing.B) {
	inputs := append(worstCaseInputs, struct{ name, text string }{"prose-4KB", benchProse4K})
	for _, enc := range []string{CL100K, O200K} {
		c := counter(b, enc)
		for _, in := range inputs {
			for _, v := range []struct {
				name string
				bpe  *bpe
			}{{"new", c.bpe}, {"old", heapOnly(c)}} {
				b.Run(enc+"/"+in.name+"/"+v.name, func(b *testing.B) {
					b.SetBytes(int64(len(in.text)))
					b.ReportAllocs()
					cpu := cpuTime()
					for i := 0; i < b.N; i++ {
						v.bpe.count(in.text)
					}
					b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
				})
			}
		}
	}
}

// cpuTime is the process's user and system time. On a machine whose cores
// other work shares, it tracks the work a benchmark did more closely than
// the wall time ns/op reports.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
