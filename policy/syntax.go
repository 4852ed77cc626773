package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// textProblem finds the first byte that makes b something other than YAML
// text: a byte sequence that is not UTF-8, or a character YAML does not
// allow (most control characters). yaml.v3 refuses both without saying
// where, so they are found here first, by line and column (in characters).
func textProblem(b []byte) (Problem, bool) {
	if bytes.HasPrefix(b, []byte{0xfe, 0xff}) || bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
		return Problem{Line: 1, Message: "the document is UTF-16; save it as UTF-8"}, true
	}
	line, col := 1, 1
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return Problem{Line: line, Message: fmt.Sprintf("byte 0x%02x at column %d is not UTF-8; a policy is UTF-8 text", b[i], col)}, true
		case !yamlPrintable(r):
			return Problem{Line: line, Message: fmt.Sprintf("character %U at column %d is a control character YAML does not allow", r, col)}, true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	return Problem{}, false
}

// yamlPrintable is the character set the YAML 1.1 reader accepts.
func yamlPrintable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
		(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || (r >= 0x10000 && r <= 0x10ffff)
}

// maxSyntaxSearchBytes bounds the parsing spent locating one syntax error:
// twice the largest document, so a full search covers documents up to a few
// hundred KiB and no input costs more than about two full decodes more.
const maxSyntaxSearchBytes = 2 * MaxDocumentBytes

// syntaxProblem turns a yaml.v3 error on b into a Problem at the line that
// causes it. yaml.v3's line is at best a lower bound: its parser counts
// lines from 0 (and names none on the first), and inside a block mapping or
// sequence it names the line where that collection began, so a mis-indented
// key deep in a document is blamed on its section's first line. The line is
// found instead as the shortest prefix of b, in whole lines from the one
// yaml.v3 names, that fails with the same message: text past the offending
// line cannot change the first error, and a prefix that stops before it
// parses or fails otherwise. That costs a parse per halving, on errors only.
func syntaxProblem(b []byte, err error) Problem {
	line, msg := splitYAMLError(err)
	line = max(line, 1)
	ends := lineEnds(b)
	switch {
	case strings.HasPrefix(msg, "unknown anchor '") || strings.HasPrefix(msg, "anchor '"):
		// Reported without a line: find the alias.
		name, _, _ := strings.Cut(msg[strings.Index(msg, "'")+1:], "'")
		line = aliasLine(b, name)
	case line > len(ends):
		line = len(ends) // the end of the stream, on the last line
		fallthrough
	default:
		lo, hi := line, len(ends)
		spent := 0
		for lo < hi {
			mid := lo + (hi-lo)/2
			if spent += ends[mid-1]; spent > maxSyntaxSearchBytes {
				// A huge document: say what is known rather than parse on.
				return Problem{Line: lo, Message: fmt.Sprintf("YAML syntax: %s (at or after line %d, before line %d)", msg, lo, hi+1)}
			}
			if _, m := splitYAMLError(firstError(b[:ends[mid-1]])); m == msg {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		line = lo
	}
	return Problem{Line: line, Message: "YAML syntax: " + msg}
}

// splitYAMLError splits "yaml: line 3: problem" into 3 and "problem".
func splitYAMLError(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, m, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				return l, m
			}
		}
	}
	return 0, msg
}

// firstError decodes every document of b and returns the first error.
func firstError(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// lineEnds returns the offset just past each line of b.
func lineEnds(b []byte) []int {
	var ends []int
	for i, c := range b {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		ends = append(ends, len(b))
	}
	return ends
}

// aliasLine is the line of the first "*name" alias in b, or 0.
func aliasLine(b []byte, name string) int {
	alias := []byte("*" + name)
	for off := 0; ; {
		i := bytes.Index(b[off:], alias)
		if i < 0 {
			return 0
		}
		end := off + i + len(alias)
		if end == len(b) || bytes.IndexByte([]byte(" \t\r\n,[]{}"), b[end]) >= 0 {
			return bytes.Count(b[:off+i], []byte("\n")) + 1
		}
		off = end
	}
}
