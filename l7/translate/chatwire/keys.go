package chatwire

// TopLevelKeys calls f with each key of the JSON object b, as its raw
// bytes between the quotes (a key holding an escape is passed with its
// backslashes, so it matches no plain name). b must already be known to
// be valid JSON (the translators decode it first): this only walks its
// structure, once, so that refusing unknown fields does not cost a second
// full decode of the body.
func TopLevelKeys(b []byte, f func(key []byte)) {
	i := ws(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i++
	for {
		i = ws(b, i)
		if i >= len(b) || b[i] != '"' {
			return
		}
		end := skipString(b, i)
		f(b[i+1 : end-1])
		i = ws(b, end)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = skipValue(b, ws(b, i+1))
		i = ws(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

func ws(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
