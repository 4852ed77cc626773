package inspect

import (
	"unicode/utf8"
)

// Invisible-Unicode smuggling: tag characters, variation selectors,
// zero-width and bidirectional controls.

// invisibleLeads are the UTF-8 lead bytes of the characters matchInvisible
// looks for.
var invisibleLeads = []byte{0xE1, 0xE2, 0xEF, 0xF3}

// invisibleKind classifies a rune: 0 visible, 1 always suspicious, 2 a
// joiner that is legitimate between non-ASCII characters (emoji sequences,
// Indic and Arabic scripts).
func invisibleKind(r rune) int {
	switch {
	case r >= 0xE0000 && r <= 0xE007F: // tag characters
		return 1
	case r >= 0xE0100 && r <= 0xE01EF: // variation selectors 17-256
		return 1
	case r == 0x200B || r == 0x2060 || r == 0x180E || r == 0xFEFF:
		return 1
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return 1
	case r >= 0x2061 && r <= 0x2064: // invisible operators
		return 1
	case r == 0x200C || r == 0x200D:
		return 2
	}
	return 0
}

// matchInvisible finds a run of invisible characters starting at i.
func matchInvisible(text string, i int) (int, bool) {
	r, size := utf8.DecodeRuneInString(text[i:])
	k := invisibleKind(r)
	if k == 0 || (r == 0xFEFF && i == 0) {
		return 0, false
	}
	end, bad := i+size, k == 1
	for end < len(text) {
		r, size := utf8.DecodeRuneInString(text[end:])
		k := invisibleKind(r)
		if k == 0 {
			break
		}
		bad = true // a run of two or more is never needed
		end += size
	}
	if !bad {
		// A lone joiner: suspicious only next to ASCII or at an edge.
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		after, _ := utf8.DecodeRuneInString(text[end:])
		if i == 0 || end == len(text) || before < 0x80 || after < 0x80 {
			bad = true
		}
	}
	return end, bad
}
