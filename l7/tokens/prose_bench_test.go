package tokens

import (
	"strings"
	"testing"
)

var benchProse4K = func() string {
	s := strings.Repeat("The quarterly report shows steady growth in every region, and the team expects demand to rise again next year as new customers arrive. ", 40)
	return s[:4096]
}()

func BenchmarkCountProse(b *testing.B) {
	b.Run("o200k", func(b *testing.B) { benchCount(b, O200K, benchProse4K) })
}
