package h1

// ParseLength reads a Content-Length value: decimal digits only, no sign,
// at most maxContentLengthDigits so it stays inside int64. The gateway's
// upstream reader uses it too, so both directions frame alike.
func ParseLength(s string) (int64, bool) {
	if s == "" || len(s) > maxContentLengthDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ParseChunkSize reads the hexadecimal size that starts a chunk-size line
// (without its CRLF) and returns it with the index where the digits end,
// where any chunk extension begins. ok is false when there are no digits
// or more than maxChunkSizeDigits (a size outside int64). It is generic so
// that callers holding the line as bytes need no copy.
func ParseChunkSize[T ~string | ~[]byte](line T) (size int64, end int, ok bool) {
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return size, i, i > 0
		}
		if i >= maxChunkSizeDigits {
			return 0, i, false
		}
		size = size<<4 | int64(d)
	}
	return size, i, i > 0
}
