package tokens

import (
	"sort"
	"unicode"
)

// Go's unicode tables are Unicode 15.0.0; OpenAI's tiktoken matches with
// Rust's regex crate, whose tables are Unicode 16.0. For the code points
// that Unicode 15.1 and 16.0 assigned (CJK Extension I, Egyptian
// Hieroglyphs Extended-A, new scripts such as Garay and Todhri) Go would
// say "unassigned" and split them as punctuation, where tiktoken sees
// letters, marks or digits. unicode16Ranges (unicode16_table.go) supplies
// their classes. It was generated from ICU's Unicode 17 tables in Node.js,
// keeping only the code points that the npm package tiktoken (the
// WebAssembly build of OpenAI's tiktoken) treats as assigned, which left
// out Unicode 17.0's additions. tiktoken-go, built on Go's tables, differs
// from OpenAI's tiktoken on exactly these code points; testdata/unicode16.json
// holds counts made by OpenAI's tiktoken for text full of them.

type classRange struct {
	lo, hi rune
	c      rclass
}

// unicode16Class returns the class of r from unicode16Ranges; r must be
// unassigned in Go's tables.
func unicode16Class(r rune) rclass {
	i := sort.Search(len(unicode16Ranges), func(i int) bool { return unicode16Ranges[i].hi >= r })
	if i < len(unicode16Ranges) && unicode16Ranges[i].lo <= r {
		return unicode16Ranges[i].c
	}
	return 0
}

// isUnicode16 reports whether r is one of the code points classified by
// unicode16Ranges rather than by Go's tables.
func isUnicode16(r rune) bool {
	return unicode.Is(unicode.Cn, r) && unicode16Class(r) != 0
}
