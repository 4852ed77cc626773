package tokens

import (
	"unicode"
	"unicode/utf8"
)

// maxPendingBytes bounds the text a CompletionCounter holds while it waits
// for a point where counting can be split. Text with no ASCII space in it
// (CJK prose, minified code) reaches it after this many bytes; the count is
// then split at the last rune boundary, which can be off by a token or two
// for each such split.
const maxPendingBytes = 256 << 10

// CompletionCounter counts the tokens of completion text that arrives in
// pieces (stream deltas). The total equals Count of the concatenated text:
// pieces are only counted up to a point where the pre-tokenizer is known to
// start a new token, so no token is split between two counts.
//
// A CompletionCounter is not safe for concurrent use; use one per stream.
type CompletionCounter struct {
	c       *Counter
	pending []byte
	// scanned is how far pending has been searched for a split point.
	scanned int
	counted int
}

// CountCompletionText starts counting a streamed completion.
func (c *Counter) CountCompletionText() *CompletionCounter {
	return &CompletionCounter{c: c}
}

// WriteString adds the next piece of completion text.
func (s *CompletionCounter) WriteString(delta string) {
	s.pending = append(s.pending, delta...)
	s.flush()
}

// Write adds the next piece of completion text; it never fails.
func (s *CompletionCounter) Write(p []byte) (int, error) {
	s.pending = append(s.pending, p...)
	s.flush()
	return len(p), nil
}

// Tokens is the number of tokens in all the text written so far.
func (s *CompletionCounter) Tokens() int {
	return s.counted + s.c.Count(string(s.pending))
}

// flush counts pending text up to the last split point, if any.
func (s *CompletionCounter) flush() {
	q := lastSplit(s.pending, s.scanned)
	if q <= 0 {
		s.scanned = len(s.pending)
		if len(s.pending) < maxPendingBytes {
			return
		}
		// Nothing splits this text; split before its last rune so memory
		// stays bounded.
		q = len(s.pending) - 1
		for q > 0 && !utf8.RuneStart(s.pending[q]) {
			q--
		}
		if q <= 0 {
			return
		}
	}
	s.counted += s.c.Count(string(s.pending[:q]))
	n := copy(s.pending, s.pending[q:])
	s.pending = s.pending[:n]
	s.scanned = 0
}

// lastSplit returns the last index q >= from where text[q] is an ASCII space
// and the rune before it is not white space, or -1. Every alternative of the
// cl100k_base and o200k_base pre-tokenizer patterns that covers a
// non-space character stops before a following space, and matching from q
// depends on nothing before q, so Count(text) == Count(text[:q]) +
// Count(text[q:]).
func lastSplit(text []byte, from int) int {
	for q := len(text) - 1; q > 0 && q >= from; q-- {
		if text[q] != ' ' {
			continue
		}
		r, size := utf8.DecodeLastRune(text[:q])
		if size == 0 || (r == utf8.RuneError && size == 1) || unicode.IsSpace(r) {
			continue
		}
		return q
	}
	return -1
}
