package openai

import "bytes"

var finishKey = []byte(`"finish_reason"`)

// maxFinishReason bounds the finish reason FindFinishReason returns.
const maxFinishReason = 64

// FindFinishReason returns the last string-valued "finish_reason" of a
// response or chunk without decoding it (tracing reads it; nothing else
// needs it). A value that is null, not a string, escaped or longer than
// maxFinishReason is skipped: finish reasons are short plain words.
func FindFinishReason(b []byte) string {
	for len(b) > 0 {
		i := bytes.LastIndex(b, finishKey)
		if i < 0 {
			return ""
		}
		rest := bytes.TrimLeft(b[i+len(finishKey):], " \t\r\n")
		b = b[:i]
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if len(rest) == 0 || rest[0] != '"' {
			continue
		}
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 || end > maxFinishReason || bytes.IndexByte(rest[1:1+end], '\\') >= 0 {
			continue
		}
		return string(rest[1 : 1+end])
	}
	return ""
}
