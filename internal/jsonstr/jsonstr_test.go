package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppend: the output is byte for byte encoding/json's, in both
// escaping modes, for any string (invalid UTF-8 included).
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s\n\r\t\b\f\x00\x1f", "<a href='x'>&amp;</a>", "é ✓ \u2028\u2029", "\xff\xfe bad \xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(html)
			if err := enc.Encode(s); err != nil {
				t.Fatal(err)
			}
			want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
			if got := Append(nil, s, html); !bytes.Equal(got, want) {
				t.Fatalf("escapeHTML=%v %q:\n got %s\nwant %s", html, s, got, want)
			}
		}
	})
}

func TestAppendDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := "a \"quoted\" line\n with é and <tags>"
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], s, true) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}
