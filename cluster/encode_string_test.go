package cluster

import (
	"bytes"
	"encoding/json"
	"testing"
)

// writeString's shortcut for strings that need no escaping writes what
// encoding/json writes, and so does its fallback for the rest (quotes,
// backslashes, HTML characters, control characters, non-ASCII, invalid
// UTF-8).
func TestWriteStringAsJSON(t *testing.T) {
	for _, s := range []string{"", "pool-a.ml.svc", "198.19.0.1", "http://198.18.0.10:9100/load", "a\"b", `a\b`, "<x>", "a&b",
		"tab\there", "nl\n", "\x00", "\x7f", "é", "\u2028", "\xff\xfe", "~ ok !#$%'()*+,-./:;=?@[]^_`{|}"} {
		var b bytes.Buffer
		writeString(&b, s)
		want, _ := json.Marshal(s)
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("writeString(%q) = %s, want %s", s, b.Bytes(), want)
		}
	}
}
