package tokens

import (
	"strings"
	"testing"
)

// benchProse4K is the prompt scripts/bench/l7.sh sends at BODY_BYTES=4096:
// one plain English sentence repeated, cut to 4 KiB. Prose is where a
// gateway's counting time goes on most chat traffic; benchPrompt4K mixes
// in code and JSON.
var benchProse4K = func() string {
	s := strings.Repeat("The quarterly report shows steady growth in every region, and the team expects demand to rise again next year as new customers arrive. ", 40)
	return s[:4096]
}()

func BenchmarkCountProse(b *testing.B) {
	for _, enc := range []string{CL100K, O200K} {
		b.Run(enc+"/4KB/infergate", func(b *testing.B) { benchCount(b, enc, benchProse4K) })
		b.Run(enc+"/4KB/tiktoken-go", func(b *testing.B) { benchReference(b, enc, benchProse4K) })
	}
}
