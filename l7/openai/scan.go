package openai

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

var errSyntax = errors.New("invalid JSON")

// scanner is a single-pass JSON reader for the request fields the gateway
// needs. It validates everything it skips, reads keys exactly (after
// unescaping) and lets a duplicate key override an earlier one, like
// Python's json module; decodeSlow, built on encoding/json, is its
// reference and the fuzz oracle.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// atEnd reports whether only whitespace is left.
func (s *scanner) atEnd() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) expect(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// str reads a string at s.i and returns its raw bytes (without quotes) and
// whether it holds escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	if s.peek() != '"' {
		return nil, false, errSyntax
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		// Most of a prompt is plain text: skip it eight bytes at a time
		// while no byte can be a quote, a backslash or a control byte
		// (the test may report such a byte falsely, never miss one),
		// then a byte at a time with one table load each.
		for s.i+16 <= len(s.b) {
			w := s.b[s.i : s.i+16]
			x, y := binary.LittleEndian.Uint64(w), binary.LittleEndian.Uint64(w[8:])
			q, bs, r, bt := x^(lowBits*'"'), x^(lowBits*'\\'), y^(lowBits*'"'), y^(lowBits*'\\')
			if ((q-lowBits)&^q|(bs-lowBits)&^bs|(x-lowBits*0x20)&^x|
				(r-lowBits)&^r|(bt-lowBits)&^bt|(y-lowBits*0x20)&^y)&highBits != 0 {
				break
			}
			s.i += 16
		}
		for s.i+8 <= len(s.b) {
			x := binary.LittleEndian.Uint64(s.b[s.i:])
			q, bs := x^(lowBits*'"'), x^(lowBits*'\\')
			if ((q-lowBits)&^q|(bs-lowBits)&^bs|(x-lowBits*0x20)&^x)&highBits != 0 {
				break
			}
			s.i += 8
		}
		for s.i < len(s.b) && plainStr[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, false, errSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, false, errSyntax
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, false, errSyntax
					}
				}
				s.i += 6
			default:
				return nil, false, errSyntax
			}
		case c < 0x20:
			return nil, false, errSyntax
		default:
			s.i++
		}
	}
	return nil, false, errSyntax
}

// lowBits and highBits are the low and high bit of every byte of a word,
// for testing eight string bytes at once.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plainStr marks the bytes a string can hold as they are: everything but
// the quote, the backslash and the control bytes.
var plainStr = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// text turns a string's raw bytes into its value the way encoding/json
// does (escapes decoded, invalid UTF-8 replaced).
func text(raw []byte, escaped bool) string {
	if !escaped {
		// The message roles come in every request; their constants
		// save an allocation each.
		switch string(raw) {
		case "user":
			return "user"
		case "system":
			return "system"
		case "assistant":
			return "assistant"
		case "developer":
			return "developer"
		case "tool":
			return "tool"
		}
		if utf8.Valid(raw) {
			return string(raw)
		}
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var v string
	_ = json.Unmarshal(q, &v) // str validated it
	return v
}

// key reads an object key and the colon after it.
func (s *scanner) key() ([]byte, error) {
	raw, esc, err := s.str()
	if err != nil {
		return nil, err
	}
	if esc || !utf8.Valid(raw) {
		raw = []byte(text(raw, true))
	}
	if !s.expect(':') {
		return nil, errSyntax
	}
	return raw, nil
}

// number validates a JSON number and returns its bytes.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	b := s.b
	if s.i < len(b) && b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && b[s.i] >= '1' && b[s.i] <= '9':
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	default:
		return nil, errSyntax
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if s.i >= len(b) || b[s.i] < '0' || b[s.i] > '9' {
			return nil, errSyntax
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(b) || b[s.i] < '0' || b[s.i] > '9' {
			return nil, errSyntax
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	return b[start:s.i], nil
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// skip validates the value at s.i and returns its bytes.
func (s *scanner) skip() ([]byte, error) {
	s.ws()
	start := s.i
	// stack holds the open containers: '{' or '['.
	var stackBuf [32]byte
	stack := stackBuf[:0]
	for {
		// A value.
		s.ws()
		if s.i >= len(s.b) {
			return nil, errSyntax
		}
		switch c := s.b[s.i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return nil, errSyntax
			}
			s.i++
			stack = append(stack, c)
			close := byte('}')
			if c == '[' {
				close = ']'
			}
			if s.expect(close) {
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if _, _, err := s.str(); err != nil {
					return nil, err
				}
				if !s.expect(':') {
					return nil, errSyntax
				}
			}
			continue
		case c == '"':
			if _, _, err := s.str(); err != nil {
				return nil, err
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if _, err := s.number(); err != nil {
				return nil, err
			}
		case s.literal("true"), s.literal("false"), s.literal("null"):
		default:
			return nil, errSyntax
		}
		// After a value: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return s.b[start:s.i], nil
			}
			top := stack[len(stack)-1]
			c := s.peek()
			if c == ',' {
				s.i++
				if top == '{' {
					if _, _, err := s.str(); err != nil {
						return nil, err
					}
					if !s.expect(':') {
						return nil, errSyntax
					}
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			return nil, errSyntax
		}
	}
}

// object calls f for each key of the object at s.i; f must consume the
// value.
func (s *scanner) object(f func(key []byte) error) error {
	if !s.expect('{') {
		return errSyntax
	}
	if s.expect('}') {
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		if err := f(k); err != nil {
			return err
		}
		if s.expect(',') {
			continue
		}
		if s.expect('}') {
			return nil
		}
		return errSyntax
	}
}

// isNullAt reports (and consumes) a null at s.i.
func (s *scanner) null() bool {
	s.ws()
	return s.literal("null")
}

// Fields whose wrong-typed values are reported, in the order decodeSlow
// checks them. A later duplicate key with a good value clears the error,
// as the last duplicate is the one that counts.
const (
	fModel = iota
	fStream
	fMaxTokens
	fMaxCompletionTokens
	fN
	fStreamOptions
	fMessages
	numFields
)

// decodeFast is decode in one pass. It returns an *Error for a bad
// request.
func (r *Request) decodeFast(body []byte) error {
	s := &scanner{b: body}
	var errs [numFields]*Error
	cur := 0 // the field being read
	typeErr := func(e *Error) {
		if errs[cur] == nil {
			errs[cur] = e
		}
	}
	wrong := func(name string) *Error { return BadRequest("invalid_value", name+" has the wrong type", name) }
	var err error
	readString := func(dst *string, name string) error {
		if s.null() {
			*dst = ""
			return nil
		}
		if s.peek() != '"' {
			if _, err := s.skip(); err != nil {
				return err
			}
			typeErr(wrong(name))
			return nil
		}
		raw, esc, err := s.str()
		if err != nil {
			return err
		}
		*dst = text(raw, esc)
		return nil
	}
	readBool := func(dst *bool, name string) error {
		s.ws()
		switch {
		case s.literal("null"):
			*dst = false
		case s.literal("true"):
			*dst = true
		case s.literal("false"):
			*dst = false
		default:
			if _, err := s.skip(); err != nil {
				return err
			}
			typeErr(wrong(name))
		}
		return nil
	}
	readInt := func(dst **int64, name string) error {
		s.ws()
		if s.literal("null") {
			*dst = nil
			return nil
		}
		if c := s.peek(); c == '-' || (c >= '0' && c <= '9') {
			lit, err := s.number()
			if err != nil {
				return err
			}
			v, perr := strconv.ParseInt(string(lit), 10, 64)
			if perr != nil {
				typeErr(wrong(name))
				return nil
			}
			*dst = &v
			return nil
		}
		if _, err := s.skip(); err != nil {
			return err
		}
		typeErr(wrong(name))
		return nil
	}
	var msgsErr bool
	err = s.object(func(k []byte) error {
		field := func(f int) { cur = f; errs[f] = nil }
		switch string(k) {
		case "model":
			field(fModel)
			return readString(&r.Model, "model")
		case "stream":
			field(fStream)
			return readBool(&r.Stream, "stream")
		case "max_tokens":
			field(fMaxTokens)
			return readInt(&r.MaxTokens, "max_tokens")
		case "max_completion_tokens":
			field(fMaxCompletionTokens)
			return readInt(&r.MaxCompletionTokens, "max_completion_tokens")
		case "n":
			field(fN)
			return readInt(&r.N, "n")
		case "prompt":
			v, err := s.skip()
			r.Prompt = v
			return err
		case "input":
			v, err := s.skip()
			r.Input = v
			return err
		case "tools":
			v, err := s.skip()
			r.Tools = v
			return err
		case "functions":
			v, err := s.skip()
			r.Functions = v
			return err
		case "response_format":
			v, err := s.skip()
			r.ResponseFormat = v
			return err
		case "stream_options":
			field(fStreamOptions)
			if s.null() {
				r.StreamOptions = nil
				return nil
			}
			if s.peek() != '{' {
				if _, err := s.skip(); err != nil {
					return err
				}
				typeErr(BadRequest("invalid_value", "stream_options must be an object", "stream_options"))
				return nil
			}
			r.StreamOptions = &StreamOptions{}
			return s.object(func(k []byte) error {
				if string(k) == "include_usage" {
					return readBool(&r.StreamOptions.IncludeUsage, "include_usage")
				}
				_, err := s.skip()
				return err
			})
		case "messages":
			field(fMessages)
			r.Messages = r.Messages[:0]
			msgsErr = false
			if s.null() {
				r.Messages = nil
				return nil
			}
			if s.peek() != '[' {
				if _, err := s.skip(); err != nil {
					return err
				}
				msgsErr = true
				return nil
			}
			s.i++
			if s.expect(']') {
				return nil
			}
			for {
				r.Messages = append(r.Messages, Message{})
				m := &r.Messages[len(r.Messages)-1]
				switch {
				case s.null():
				case s.peek() == '{':
					idx := len(r.Messages) - 1
					if err := s.object(func(k []byte) error {
						var dst *string
						switch string(k) {
						case "role":
							dst = &m.Role
						case "name":
							dst = &m.Name
						case "tool_call_id":
							dst = &m.ToolCallID
						case "content":
							m.contentScanned = false
							if s.ws(); s.peek() == '"' {
								start := s.i
								raw, esc, err := s.str()
								if err != nil {
									return err
								}
								m.Content, m.contentRaw, m.contentEsc, m.contentScanned = s.b[start:s.i], raw, esc, true
								return nil
							}
							v, err := s.skip()
							m.Content = v
							if err == nil && len(v) == 4 && string(v) == "null" {
								m.Content = nil
							}
							return err
						case "tool_calls":
							v, err := s.skip()
							m.ToolCalls = v
							return err
						case "refusal":
							dst = &m.Refusal
						case "function_call":
							v, err := s.skip()
							m.FunctionCall = v
							return err
						default:
							if variantOf(k, messageKeys) != "" {
								r.Variants = true
							}
							_, err := s.skip()
							return err
						}
						return readString(dst, "messages["+strconv.Itoa(idx)+"]."+string(k))
					}); err != nil {
						return err
					}
				default:
					if _, err := s.skip(); err != nil {
						return err
					}
					msgsErr = true
				}
				if s.expect(',') {
					continue
				}
				if s.expect(']') {
					return nil
				}
				return errSyntax
			}
		default:
			if a := variantOf(k, topKeys); a != "" && r.ambiguous == "" {
				r.ambiguous = a
			}
			_, err := s.skip()
			return err
		}
	})
	if err == nil && !s.atEnd() {
		err = errSyntax
	}
	if err != nil {
		return BadRequest("invalid_json", "malformed JSON body", "")
	}
	if msgsErr {
		errs[fMessages] = BadRequest("invalid_value", "messages must be an array of objects", "messages")
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	if len(r.Messages) > MaxMessages {
		return BadRequest("too_many_messages", "too many messages", "messages")
	}
	return nil
}
