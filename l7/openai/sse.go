package openai

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// MaxEventBytes bounds one server-sent event.
const MaxEventBytes = 1 << 20

// ErrEventTooLarge is returned for an event over MaxEventBytes.
var ErrEventTooLarge = errors.New("sse: event larger than limit")

// EventReader splits a text/event-stream into events. The returned slices
// are reused by the next call.
type EventReader struct {
	br   *bufio.Reader
	buf  []byte
	data []byte
}

// NewEventReader reads events from br.
func NewEventReader(br *bufio.Reader) *EventReader { return &EventReader{br: br} }

// Next returns the next event's raw bytes (its lines and the blank line that
// ends it) and the value of its data field(s) joined by "\n" (nil when it
// has none). A stream that ends inside an event returns what it had with
// io.ErrUnexpectedEOF; a clean end returns io.EOF.
func (er *EventReader) Next() (raw, data []byte, err error) {
	er.buf = er.buf[:0]
	er.data = er.data[:0]
	hasData := false
	for {
		start := len(er.buf)
		for {
			line, err := er.br.ReadSlice('\n')
			if len(er.buf)+len(line) > MaxEventBytes {
				return nil, nil, ErrEventTooLarge
			}
			er.buf = append(er.buf, line...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if err == io.EOF {
					if len(bytes.TrimSpace(er.buf)) > 0 {
						return er.buf, nil, io.ErrUnexpectedEOF
					}
					return nil, nil, io.EOF
				}
				return nil, nil, err
			}
			break
		}
		l := bytes.TrimRight(er.buf[start:], "\r\n")
		if len(l) == 0 {
			if start == 0 {
				// Blank lines between events.
				er.buf = er.buf[:0]
				continue
			}
			if hasData {
				return er.buf, er.data, nil
			}
			return er.buf, nil, nil
		}
		if v, ok := bytes.CutPrefix(l, []byte("data:")); ok {
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			if hasData {
				er.data = append(er.data, '\n')
			}
			er.data = append(er.data, v...)
			hasData = true
		}
	}
}

// Usage is OpenAI's usage object.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Chunk is what the gateway reads from a streamed chunk.
type Chunk struct {
	Choices []ChunkChoice
	Usage   *Usage
	usage   Usage
}

// ChunkChoice is one choice of a chunk: chat (Delta.Content) or text
// completion (Text).
type ChunkChoice struct {
	Delta struct {
		Content string
	}
	Text string
}

// Done is the data of the stream's last event.
var Done = []byte("[DONE]")

var errWrongType = errors.New("chunk field has the wrong type")

// ParseChunk decodes a chunk's data into c, reusing its storage. Keys are
// matched exactly and a duplicate key overrides an earlier one (as the
// servers that write them do); one pass, no reflection: it runs once per
// streamed token. FuzzParseChunk holds it to an encoding/json reference.
func ParseChunk(data []byte, c *Chunk) error {
	c.Choices = c.Choices[:0]
	c.Usage = nil
	s := &scanner{b: data}
	str := func(dst *string) error {
		if s.null() {
			*dst = ""
			return nil
		}
		if s.peek() != '"' {
			return errWrongType
		}
		raw, esc, err := s.str()
		if err != nil {
			return err
		}
		*dst = text(raw, esc)
		return nil
	}
	delta := func(ch *ChunkChoice) error {
		if s.null() {
			ch.Delta.Content = ""
			return nil
		}
		if s.peek() != '{' {
			return errWrongType
		}
		return s.object(func(k []byte) error {
			if string(k) == "content" {
				return str(&ch.Delta.Content)
			}
			_, err := s.skip()
			return err
		})
	}
	choices := func() error {
		c.Choices = c.Choices[:0]
		if s.null() {
			return nil
		}
		if !s.expect('[') {
			return errWrongType
		}
		if s.expect(']') {
			return nil
		}
		for {
			c.Choices = append(c.Choices, ChunkChoice{})
			ch := &c.Choices[len(c.Choices)-1]
			switch {
			case s.null():
			case s.peek() == '{':
				if err := s.object(func(k []byte) error {
					switch string(k) {
					case "text":
						return str(&ch.Text)
					case "delta":
						return delta(ch)
					}
					_, err := s.skip()
					return err
				}); err != nil {
					return err
				}
			default:
				return errWrongType
			}
			if s.expect(',') {
				continue
			}
			if s.expect(']') {
				return nil
			}
			return errSyntax
		}
	}
	err := s.object(func(k []byte) error {
		switch string(k) {
		case "choices":
			return choices()
		case "usage":
			if s.null() {
				c.Usage = nil
				return nil
			}
			if s.peek() != '{' {
				return errWrongType
			}
			v, err := s.skip()
			if err != nil {
				return err
			}
			c.usage = Usage{}
			if !parseUsage(v, &c.usage) {
				return errWrongType
			}
			c.Usage = &c.usage
			return nil
		}
		_, err := s.skip()
		return err
	})
	if err == nil && !s.atEnd() {
		err = errSyntax
	}
	return err
}

// AppendText appends the chunk's completion text (all choices) to dst.
func (c *Chunk) AppendText(dst []byte) []byte {
	for i := range c.Choices {
		dst = append(dst, c.Choices[i].Delta.Content...)
		dst = append(dst, c.Choices[i].Text...)
	}
	return dst
}

// Response is what the gateway reads from a whole (non-streamed) response.
type Response struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text string `json:"text"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

// Text is the completion text of every choice, concatenated.
func (r *Response) Text() string {
	if len(r.Choices) == 1 {
		return r.Choices[0].Message.Content + r.Choices[0].Text
	}
	var b []byte
	for i := range r.Choices {
		b = append(b, r.Choices[i].Message.Content...)
		b = append(b, r.Choices[i].Text...)
	}
	return string(b)
}

var usageKey = []byte(`"usage"`)

// FindUsage extracts a response's top-level usage object without decoding
// the rest of the body. Inside JSON strings a quote is escaped, so an
// unescaped "usage" followed by a colon is a key; the last one is taken,
// as servers write usage after the choices. ok is false when there is none
// (or it is null), and the caller decodes the whole body.
func FindUsage(body []byte) (u Usage, ok bool) {
	i := bytes.LastIndex(body, usageKey)
	if i < 0 {
		return u, false
	}
	rest := bytes.TrimLeft(body[i+len(usageKey):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return u, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '{' {
		return u, false
	}
	end := objectEnd(rest)
	if end < 0 {
		return u, false
	}
	if !parseUsage(rest[:end+1], &u) {
		return Usage{}, false
	}
	return u, true
}

// parseUsage reads the three counters of a usage object in one pass;
// other fields (token details) are validated and skipped. It agrees with
// encoding/json on what it accepts (FuzzFindUsage).
func parseUsage(b []byte, u *Usage) bool {
	s := &scanner{b: b}
	err := s.object(func(k []byte) error {
		var dst *int64
		switch string(k) {
		case "prompt_tokens":
			dst = &u.PromptTokens
		case "completion_tokens":
			dst = &u.CompletionTokens
		case "total_tokens":
			dst = &u.TotalTokens
		default:
			_, err := s.skip()
			return err
		}
		if s.null() {
			return nil
		}
		if c := s.peek(); c != '-' && (c < '0' || c > '9') {
			return errSyntax
		}
		lit, err := s.number()
		if err != nil {
			return err
		}
		v, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil {
			return err
		}
		*dst = v
		return nil
	})
	return err == nil && s.atEnd()
}

// objectEnd returns the index of the brace closing the object b starts
// with, or -1.
func objectEnd(b []byte) int {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
