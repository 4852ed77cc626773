package tokens

import (
	"math/bits"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The hand-written pre-tokenizers below split text exactly as the
// backtracking regular expressions cl100kPattern and o200kPattern do under
// regexp2 (whose character classes are Go's unicode tables and whose (?i)
// compares unicode.ToLower): each function returns where the piece that
// starts at i ends, trying the pattern's alternatives in order. Tests hold
// them to the expressions on the golden corpus, random text and fuzzing.
// The one deliberate difference: code points new in Unicode 15.1 and 16.0
// take their classes from unicode16Ranges, as OpenAI's tiktoken does.

// rclass is a rune's membership in the classes the patterns use.
type rclass uint8

const (
	cL  rclass = 1 << iota // \p{L}
	cN                     // \p{N}
	cS                     // \s
	cU                     // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cW                     // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	cNL                    // \r or \n
)

func classOf(r rune) rclass {
	if unicode.Is(unicode.Cn, r) {
		return unicode16Class(r)
	}
	var c rclass
	if unicode.Is(unicode.L, r) {
		c |= cL
	}
	if unicode.Is(unicode.N, r) {
		c |= cN
	}
	if unicode.IsSpace(r) {
		c |= cS
	}
	lm, lo, m := unicode.Is(unicode.Lm, r), unicode.Is(unicode.Lo, r), unicode.Is(unicode.M, r)
	if unicode.Is(unicode.Lu, r) || unicode.Is(unicode.Lt, r) || lm || lo || m {
		c |= cU
	}
	if unicode.Is(unicode.Ll, r) || lm || lo || m {
		c |= cW
	}
	if r == '\r' || r == '\n' {
		c |= cNL
	}
	return c
}

// bmpClasses caches classOf for the Basic Multilingual Plane (64 KiB, built
// once, on first use).
var (
	bmpOnce    sync.Once
	bmpClasses []rclass
)

func loadBMPClasses() {
	bmpOnce.Do(func() {
		t := make([]rclass, 0x10000)
		for r := range t {
			t[r] = classOf(rune(r))
		}
		bmpClasses = t
	})
}

// asciiClasses is classOf for ASCII in an array, so that classAt's common
// case is small enough to inline and needs no bounds check; it is ready at
// package initialization, before any encoder is built.
var asciiClasses = func() (t [utf8.RuneSelf]rclass) {
	for r := range t {
		t[r] = classOf(rune(r))
	}
	return t
}()

// classAt returns the class and size of the rune at i (i < len(text)).
func classAt(text string, i int) (rclass, int) {
	if c := text[i]; c < utf8.RuneSelf {
		return asciiClasses[c], 1
	}
	return classAtRune(text, i)
}

// classAtRune is classAt for a rune that is not ASCII.
func classAtRune(text string, i int) (rclass, int) {
	r, size := utf8.DecodeRuneInString(text[i:])
	if r < 0x10000 {
		return bmpClasses[r], size
	}
	return classOf(r), size
}

// isP is [^\s\p{L}\p{N}].
func isP(c rclass) bool { return c&(cS|cL|cN) == 0 }

// isPrefix is [^\r\n\p{L}\p{N}].
func isPrefix(c rclass) bool { return c&(cNL|cL|cN) == 0 }

// contraction returns the length of (?i:'s|'t|'re|'ve|'m|'ll|'d) at i, or 0.
// It is small enough to inline: it runs after every word, and nearly every
// word is followed by something other than an apostrophe.
func contraction(text string, i int) int {
	if i+1 >= len(text) || text[i] != '\'' {
		return 0
	}
	return contractionAt(text, i)
}

// contractionAt is contraction after its first test.
func contractionAt(text string, i int) int {
	r1, s1 := utf8.DecodeRuneInString(text[i+1:])
	switch unicode.ToLower(r1) {
	case 's', 't', 'm', 'd':
		return 1 + s1
	case 'r', 'v', 'l':
		j := i + 1 + s1
		if j >= len(text) {
			return 0
		}
		r2, s2 := utf8.DecodeRuneInString(text[j:])
		l1, l2 := unicode.ToLower(r1), unicode.ToLower(r2)
		if (l1 == 'r' || l1 == 'v') && l2 == 'e' || l1 == 'l' && l2 == 'l' {
			return 1 + s1 + s2
		}
	}
	return 0
}

// runOf returns the end of the run of runes in class mask from i.
func runOf(text string, i int, mask rclass) int {
	for i < len(text) {
		// classAt is just over the inlining budget, and this loop is
		// where most of the pre-tokenizer's time goes: ASCII by hand.
		if b := text[i]; b < utf8.RuneSelf {
			if asciiClasses[b]&mask == 0 {
				break
			}
			i++
			continue
		}
		c, n := classAtRune(text, i)
		if c&mask == 0 {
			break
		}
		i += n
	}
	return i
}

// whitespace handles the three white-space alternatives shared by both
// patterns: \s*[\r\n]+ | \s+(?!\S) | \s+, at a white-space rune.
func whitespace(text string, i int) int {
	end, lastNL, prev := i, -1, i
	for end < len(text) {
		c, n := classAt(text, end)
		if c&cS == 0 {
			break
		}
		if c&cNL != 0 {
			lastNL = end + n
		}
		prev = end
		end += n
	}
	if lastNL >= 0 {
		return lastNL // \s*[\r\n]+ backtracks to the last line break
	}
	if end == len(text) || prev == i {
		return end // (?!\S) holds at the end; a single space is \s+
	}
	return prev // leave the last space to prefix the next word
}

// punct is " ?[^\s\p{L}\p{N}]+" followed by the trailing set (\r\n, plus
// '/' for o200k) at i, or -1.
func punct(text string, i int, c rclass, slash bool) int {
	j := i
	if text[i] == ' ' && i+1 < len(text) {
		if c2, _ := classAt(text, i+1); isP(c2) {
			j = i + 1
			c = c2
		}
	}
	if !isP(c) {
		return -1
	}
	for j < len(text) {
		c, n := classAt(text, j)
		if !isP(c) {
			break
		}
		j += n
	}
	for j < len(text) && (text[j] == '\r' || text[j] == '\n' || slash && text[j] == '/') {
		j++
	}
	return j
}

// cl100kPiece ends the cl100k_base piece starting at i.
func cl100kPiece(text string, i int) int {
	if n := contraction(text, i); n > 0 {
		return i + n
	}
	c, n := classAt(text, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c&cL != 0 {
		return runOf(text, i+n, cL)
	}
	if isPrefix(c) && i+n < len(text) {
		if c2, _ := classAt(text, i+n); c2&cL != 0 {
			return runOf(text, i+n, cL)
		}
	}
	// \p{N}{1,3}
	if c&cN != 0 {
		return digits3(text, i+n)
	}
	if j := punct(text, i, c, false); j >= 0 {
		return j
	}
	return whitespace(text, i)
}

// o200kLetters tries the two letter alternatives of o200k_base without
// their optional prefix, at i; it returns -1 when neither matches.
func o200kLetters(text string, i int, alt int) int {
	if i >= len(text) {
		return -1
	}
	if alt == 1 {
		// [U]*[W]+ : the U run, then W from the last W rune at or before
		// its end (U* gives runes back to W+).
		j, lastW := i, -1
		for j < len(text) {
			c, n := classAt(text, j)
			if c&cU == 0 {
				if c&cW != 0 {
					lastW = j
				}
				break
			}
			if c&cW != 0 {
				lastW = j
			}
			j += n
		}
		if lastW < 0 {
			return -1
		}
		var end int
		if lastW == j {
			end = runOf(text, j, cW) // W+ continues past the U run
		} else {
			_, n := classAt(text, lastW)
			end = lastW + n
		}
		return end + contraction(text, end)
	}
	// [U]+[W]*
	j := runOf(text, i, cU)
	if j == i {
		return -1
	}
	j = runOf(text, j, cW)
	return j + contraction(text, j)
}

// o200kPiece ends the o200k_base piece starting at i.
func o200kPiece(text string, i int) int {
	if j := o200kASCIIWord(text, i); j >= 0 {
		return j
	}
	return o200kOther(text, i)
}

// o200kOther is o200kPiece where o200kASCIIWord found no piece.
func o200kOther(text string, i int) int {
	c, n := classAt(text, i)
	for alt := 1; alt <= 2; alt++ {
		if isPrefix(c) {
			if j := o200kLetters(text, i+n, alt); j >= 0 {
				return j
			}
		}
		if j := o200kLetters(text, i, alt); j >= 0 {
			return j
		}
	}
	if c&cN != 0 {
		return digits3(text, i+n)
	}
	if j := punct(text, i, c, true); j >= 0 {
		return j
	}
	return whitespace(text, i)
}

// digits3 ends the \p{N}{1,3} piece whose first digit ends at j.
func digits3(text string, j int) int {
	for k := 1; k < 3 && j < len(text); k++ {
		c, n := classAt(text, j)
		if c&cN == 0 {
			break
		}
		j += n
	}
	return j
}

// o200kASCIIWord is o200kPiece's letter alternatives for a word of ASCII
// letters with an optional ASCII prefix, the common case, without the
// per-rune classAt calls and the four tries of the general path. ASCII
// upper case is U and not W, lower case W and not U, so [U]*[W]+ and
// [U]+[W]* both end where the lower-case run does. It returns -1, leaving
// the piece to the general path, when there is no letter or when a
// non-ASCII rune follows, which could extend either run.
func o200kASCIIWord(text string, i int) int {
	j := i
	if b := text[i]; b < utf8.RuneSelf && isPrefix(asciiClasses[b]) {
		j++
	}
	w := j
	for w < len(text) && text[w] >= 'A' && text[w] <= 'Z' {
		w++
	}
	w = lowerRun(text, w)
	if w == j || w < len(text) && text[w] >= utf8.RuneSelf {
		return -1
	}
	return w + contraction(text, w)
}

// wordLead says how an ASCII word can start at a byte, for o200kWordEnd.
var wordLead = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c >= 'a' && c <= 'z':
			t[c] = leadLower
		case c >= 'A' && c <= 'Z':
			t[c] = leadUpper
		case c < utf8.RuneSelf && isPrefix(asciiClasses[c]):
			t[c] = leadPrefix
		default:
			t[c] = leadNone // a digit, \r, \n or not ASCII
		}
	}
	return t
}()

const (
	leadNone = iota
	leadLower
	leadUpper
	leadPrefix
)

// o200kWordEnd is o200kASCIIWord for the common case, read from sixteen
// bytes of text already loaded (x the first eight, y the next, little
// endian): it returns the length of the piece when o200kASCIIWord would
// find a word of at most one upper-case letter (after the optional prefix)
// and a run of lower-case letters, that ends inside the sixteen bytes at
// an ASCII byte that is not an apostrophe; otherwise 0, leaving the piece
// to o200kASCIIWord. The count loop then has the piece's key in x and y,
// so a word is scanned and packed from the same two loads.
func o200kWordEnd(x, y uint64) int {
	var p, s uint // the prefix's length; where the lower-case run starts
	switch wordLead[byte(x)] {
	case leadLower:
	case leadUpper:
		s = 1
	case leadPrefix:
		p, s = 1, 1
		if byte(x>>8)-'A' < 26 {
			s = 2
		}
	default:
		return 0
	}
	// The shift fills with zero bytes, which notLower counts as lower
	// case, so a run that fills the rest of x goes on into y.
	var end uint
	if m := notLower(x) >> (8 * s & 63); m != 0 {
		end = s + uint(bits.TrailingZeros64(m))/8
	} else if m := notLower(y); m != 0 {
		end = shortKey + uint(bits.TrailingZeros64(m))/8
	} else {
		return 0
	}
	t := byteAt(x, y, end) // the byte after the piece
	// No letter; a non-ASCII rune, which may extend either letter run;
	// a contraction; a second upper-case letter, which o200kASCIIWord's
	// upper-case run would take.
	if end == p || t >= utf8.RuneSelf || t == '\'' || end == s && t-'A' < 26 {
		return 0
	}
	return int(end)
}

// byteAt is byte k (below 16) of the sixteen bytes x, y.
func byteAt(x, y uint64, k uint) byte {
	if k >= shortKey {
		return byte(y >> (8 * (k - shortKey) & 63))
	}
	return byte(x >> (8 * k & 63))
}

// cl100kWordEnd is cl100kPiece's letter alternative,
// [^\r\n\p{L}\p{N}]?\p{L}+, for an ASCII word read from sixteen bytes of
// text already loaded (x the first eight, y the next, little endian): it
// returns the length of the piece when the letters end inside the sixteen
// bytes at an ASCII byte (anything else may be a letter that extends the
// run), otherwise 0, leaving the piece to cl100kPiece. An apostrophe may
// start a contraction, the pattern's first alternative, so it is left to
// cl100kPiece too.
func cl100kWordEnd(x, y uint64) int {
	var p uint // the prefix's length
	switch wordLead[byte(x)] {
	case leadLower, leadUpper:
	case leadPrefix:
		if byte(x) == '\'' {
			return 0
		}
		p = 1
	default:
		return 0
	}
	// Or-ing 0x20 folds ASCII upper case onto lower case and leaves no
	// other byte a lower-case letter; the shift fills with zero bytes,
	// which count as letters, so a run that fills the rest of x goes on
	// into y.
	const fold = 0x2020202020202020
	// (Written out as in o200kWordEnd rather than shared: a shared
	// function exceeds the inlining budget, and a call here per piece
	// costs more than the rest of the scan.)
	var end uint
	if m := notLower(x|fold) >> (8 * p & 63); m != 0 {
		end = p + uint(bits.TrailingZeros64(m))/8
	} else if m := notLower(y | fold); m != 0 {
		end = shortKey + uint(bits.TrailingZeros64(m))/8
	} else {
		return 0
	}
	t := byteAt(x, y, end) // the byte after the piece
	if end == p || t >= utf8.RuneSelf {
		return 0
	}
	return int(end)
}

// punctByte marks the ASCII bytes of [^\s\p{L}\p{N}], for punctEnd.
var punctByte = func() (t [256]bool) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = isP(asciiClasses[c])
	}
	return t
}()

// punctEnd is the punctuation alternative of both patterns for the common
// run of ASCII punctuation, read from the eight bytes of text at the
// piece's start (x, little endian): it returns the length of the piece
// " ?[^\s\p{L}\p{N}]+" when that is what o200kOther or cl100kPiece would
// find and the run ends inside x at an ASCII byte that is not \r or \n
// (which the piece would take too; o200k's trailing '/' is punctuation,
// already in the run); otherwise 0. The letter alternatives come first in
// the patterns and take a single punctuation byte as the prefix of a word
// that follows it; the caller has already offered the piece to its word
// scan, but the word may not have been one the scan takes, so a letter
// after a lone byte is left to the general path as well. That also
// covers cl100k's contractions, its first alternative: an apostrophe
// starts one only when a letter follows it.
func punctEnd(x uint64) int {
	s := 0
	if byte(x) == ' ' {
		s = 1 // " ?" takes the space only before punctuation
	}
	k := s
	for k < shortKey && punctByte[byte(x>>(8*k&63))] {
		k++
	}
	if k == s || k == shortKey {
		return 0
	}
	t := byte(x >> (8 * k & 63))
	if t >= utf8.RuneSelf || t == '\r' || t == '\n' || k == 1 && (t|0x20)-'a' < 26 {
		return 0
	}
	return k
}

// lowerRun returns the end of the run of ASCII lower-case letters that
// starts at i. It tests eight bytes at a time: most words of prose end
// within one such step, where a byte loop takes one iteration and two
// comparisons per letter.
func lowerRun(text string, i int) int {
	for i+8 <= len(text) {
		s := text[i : i+8]
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if m := notLower(x); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(text) && text[i]-'a' < 26 {
		i++
	}
	return i
}

// notLower sets the high bit of each byte of x that is not an ASCII
// lower-case letter and clears every other bit. With the high bits masked
// off first, adding 0x1f or 0x05 to a byte cannot carry into the next, and
// sets its high bit exactly when the byte is at least 'a' or past 'z'.
func notLower(x uint64) uint64 {
	const (
		low7 = 0x7f7f7f7f7f7f7f7f
		high = 0x8080808080808080
		geA  = 0x1f1f1f1f1f1f1f1f // 0x80 - 'a'
		gtZ  = 0x0505050505050505 // 0x80 - ('z' + 1)
	)
	y := x & low7
	lower := (y + geA) &^ (y + gtZ) &^ x
	return ^lower & high
}
