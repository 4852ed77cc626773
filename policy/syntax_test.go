package policy

import (
	"errors"
	"strings"
	"testing"
)

// TestSyntaxLines: a YAML syntax error is reported at the line marked "#<",
// the one to fix, however deep in the document it is.
func TestSyntaxLines(t *testing.T) {
	cases := []struct{ name, doc, msg string }{
		{"key indented short in a section", minimal + "\n  dataplane:\n    xdpMode: native\n   interfaces: [eth0] #<", "did not find expected key"},
		{"list item indented short", minimal + "\n  dataplane:\n    interfaces:\n      - eth0\n      - eth1\n     - eth2 #<", "did not find expected key"},
		{"text after a quoted value", minimal + "\n  gateway:\n    listen: ':8080'\n    audit:\n      path: '/var/log/a' b #<", "did not find expected key"},
		{"list where a value belongs", minimal + "\n  gateway:\n    listen: ':8080'\n  pools: ] #<", "did not find expected node content"},
		{"undefined tag handle", minimal + "\n  gateway:\n    listen: ':8080'\n    audit: !e!x y #<", "found undefined tag handle"},
		{"unclosed flow list", minimal + "\n  dataplane:\n    xdpMode: native\n    interfaces: [eth0,\n      eth1 #<\n    decapInterfaces: [eth2]", "did not find expected ',' or ']'"},
		{"unclosed flow map", minimal + "\n  gateway:\n    listen: ':8080'\n    audit: {path: /a #<\n", "did not find expected ',' or '}'"},
		{"unclosed quote", minimal + "\n  gateway:\n    listen: \"abc #<\n    audit: {}", "found unexpected end of stream"},
		{"mapping value in a value", minimal + "\n  gateway:\n    listen: a: b #<", "mapping values are not allowed in this context"},
		{"tab indentation", minimal + "\n  gateway:\n\tlisten: x #<", "found character that cannot start any token"},
		{"sequence then mapping", "- a\nb: 1 #<", "did not find expected '-' indicator"},
		{"error on the first line", "a: b: c #<\nkind: Policy", "mapping values are not allowed in this context"},
		{"unclosed at the end", "apiVersion: infergate.dev/v1alpha1\nkind: [Policy #<\n", "did not find expected ',' or ']'"},
		{"unknown alias", minimal + "\n  dataplane:\n    xdpMode: native\n    interfaces: *ifs #<", "unknown anchor 'ifs' referenced"},
		{"in the second document", minimal + "\n---\na: 1\n  b: 2 #<", "mapping values are not allowed in this context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := markedLine(t, tc.doc)
			_, err := Decode(strings.NewReader(tc.doc))
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			p := ve.Problems[0]
			if !strings.Contains(p.Message, tc.msg) || p.Line != want {
				t.Fatalf("got %s, want ...%s (line %d)", p, tc.msg, want)
			}
		})
	}
}

// TestNotText: bytes that are not UTF-8, and characters YAML refuses, are
// reported by line and column.
func TestNotText(t *testing.T) {
	cases := []struct {
		name, doc string
		want      string
	}{
		{"latin-1 byte", minimal + "\n  gateway:\n    listen: caf\xe9", "byte 0xe9 at column 16 is not UTF-8; a policy is UTF-8 text (line 7)"},
		{"after multibyte characters", "apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  labels: {owner: \"Zoë Ñ\xff\"}", "byte 0xff at column 25 is not UTF-8; a policy is UTF-8 text (line 4)"},
		{"truncated sequence", minimal + "\n  dataplane:\n    interfaces: [\xe2\x82]", "byte 0xe2 at column 18 is not UTF-8; a policy is UTF-8 text (line 7)"},
		{"first byte", "\x80apiVersion: x", "byte 0x80 at column 1 is not UTF-8; a policy is UTF-8 text (line 1)"},
		{"NUL", minimal + "\n  gateway:\n    listen: x\x00", "character U+0000 at column 14 is a control character YAML does not allow (line 7)"},
		{"escape", "apiVersion: x\x1b[31m", "character U+001B at column 14 is a control character YAML does not allow (line 1)"},
		{"UTF-16", "\xff\xfea\x00p\x00", "the document is UTF-16; save it as UTF-8 (line 1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.doc))
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != 1 {
				t.Fatalf("want one problem, got %v", err)
			}
			if got := ve.Problems[0].String(); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// What YAML allows stays allowed: tabs in values, CR LF line ends, a
	// UTF-8 byte order mark, characters beyond the BMP.
	ok := "\xef\xbb\xbfapiVersion: infergate.dev/v1alpha1\r\nkind: Policy\r\nmetadata:\r\n  name: t\r\n  labels: {note: \"a\tb \U0001F600\"}\r\n"
	if _, err := Decode(strings.NewReader(ok)); err != nil {
		t.Fatal(err)
	}
}

// TestSyntaxSearchBounded: locating an error in the largest document costs
// a bounded amount of parsing, and says how far it got.
func TestSyntaxSearchBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal + "\n  dataplane:\n    interfaces:\n")
	for b.Len() < MaxDocumentBytes-100 {
		b.WriteString("      - eth0\n")
	}
	b.WriteString("     - bad\n")
	last := strings.Count(b.String(), "\n")
	_, err := Decode(strings.NewReader(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	p := ve.Problems[0]
	if p.Line < 6 || p.Line > last || !strings.Contains(p.Message, "did not find expected key (at or after line") {
		t.Fatalf("got %s (last line %d)", p, last)
	}
}
