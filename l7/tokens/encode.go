package tokens

import "unicode/utf8"

// MaxEncodePiece bounds the pre-tokenizer piece AppendTokens merges: the
// merge below is quadratic in the piece, so a longer piece (a run of
// letters without a space, base64) ends the encoding there instead.
const MaxEncodePiece = 256

// AppendTokens appends the token ids of text, as tiktoken's encode gives
// them for this encoding (special-token markers as ordinary text), to dst,
// and stops after limit tokens or before a piece longer than
// MaxEncodePiece bytes. It returns dst and whether all of text was
// encoded.
//
// Counting (Count) never needs the ids; a caller that hashes a prompt's
// token blocks the way an inference engine does (l7/kvindex) does, and
// only its leading part: so this is a plain byte-pair merge over each
// piece, bounded by limit and MaxEncodePiece, rather than the counting
// paths' tables.
func (c *Counter) AppendTokens(dst []uint32, text string, limit int) ([]uint32, bool) {
	if !utf8.ValidString(text) {
		text = string([]rune(text)) // each invalid byte is one U+FFFD, as in Count
	}
	start := len(dst)
	for i := 0; i < len(text); {
		if len(dst)-start >= limit {
			return dst[:start+limit], false
		}
		var j int
		if c.bpe.o200k {
			j = o200kPiece(text, i)
		} else {
			j = cl100kPiece(text, i)
		}
		if j <= i {
			_, size := utf8.DecodeRuneInString(text[i:])
			j = i + size
		}
		if j-i > MaxEncodePiece {
			return dst, false
		}
		dst = c.bpe.appendPiece(dst, text[i:j])
		i = j
	}
	if len(dst)-start > limit {
		return dst[:start+limit], false
	}
	return dst, true
}

// appendPiece appends the ids of one piece: tiktoken's byte_pair_merge
// (merge the adjacent pair of lowest rank, leftmost among equals, until
// no pair is a token), then each part's rank.
func (b *bpe) appendPiece(dst []uint32, piece string) []uint32 {
	if r := b.lookup(piece); r >= 0 {
		return append(dst, uint32(r))
	}
	var buf [MaxEncodePiece + 1]int
	starts := buf[:0]
	for i := 0; i <= len(piece); i++ {
		starts = append(starts, i)
	}
	for len(starts) > 2 {
		best, bestRank := -1, int32(-1)
		for k := 0; k+2 < len(starts); k++ {
			r := b.lookup(piece[starts[k]:starts[k+2]])
			if r >= 0 && (best < 0 || r < bestRank) {
				best, bestRank = k, r
			}
		}
		if best < 0 {
			break
		}
		starts = append(starts[:best+1], starts[best+2:]...)
	}
	for k := 0; k+1 < len(starts); k++ {
		// Every single byte is a token in both vocabularies.
		dst = append(dst, uint32(b.lookup(piece[starts[k]:starts[k+1]])))
	}
	return dst
}
