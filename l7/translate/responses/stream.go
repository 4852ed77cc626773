package responses

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Stream translates one chat-completions stream into the Responses API's
// events, chunk by chunk, each with its sequence_number: response.created
// and response.in_progress with the first chunk; per run of text a message
// item (output_item.added, content_part.added, output_text.delta…,
// output_text.done, content_part.done, output_item.done); per tool call a
// function_call item (output_item.added, function_call_arguments.delta…,
// function_call_arguments.done, output_item.done); and response.completed
// (or response.incomplete) with the usage. Every delta is sent as it
// arrives; the done events and the final response repeat the whole text,
// as the API defines them, so the items' text is kept until the end.
type Stream struct {
	info  Info
	chunk chatwire.Chunk
	resp  *Response
	seq   int64

	started bool
	open    int // index in resp.Output of the open item, -1 none
	text    strings.Builder
	args    strings.Builder
	tool    int // chat tool_call index of the open function_call item
	// toolsDone is how many chat tool calls have been closed: calls
	// stream in order (see messages.Stream).
	toolsDone int

	finish    string
	usage     chatwire.Usage
	haveUsage bool
	ended     bool
}

// NewStream starts a stream's translation.
func NewStream(info Info) *Stream { return &Stream{info: info, open: -1, tool: -1} }

var errToolOrder = errors.New("the upstream interleaved the fragments of two tool calls")

// Chunk appends the events for one chat chunk's data to dst.
func (s *Stream) Chunk(data []byte, dst []byte) ([]byte, error) {
	if err := chatwire.ParseChunk(data, &s.chunk); err != nil {
		return dst, err
	}
	c := &s.chunk
	if !s.started {
		model := c.Model
		if model == "" {
			model = s.info.Model
		}
		dst = s.start(dst, responseID(c.ID), c.Created, model)
	}
	if c.Usage != nil {
		s.usage, s.haveUsage = *c.Usage, true
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index != 0 {
			continue
		}
		d := &ch.Delta
		text := d.Text()
		if text != "" {
			if s.open < 0 || s.resp.Output[s.open].Type != "message" {
				dst = s.closeItem(dst)
				dst = s.openMessage(dst)
			}
			s.text.WriteString(text)
			dst = s.head(dst, "response.output_text.delta")
			dst = s.itemRef(dst)
			dst = append(dst, `,"content_index":0,"delta":`...)
			dst = chatwire.AppendString(dst, text)
			dst = append(dst, `,"logprobs":[]}`+"\n\n"...)
		}
		for j := range d.ToolCalls {
			tc := &d.ToolCalls[j]
			idx := j
			if tc.Index != nil {
				idx = *tc.Index
			}
			if s.open < 0 || s.resp.Output[s.open].Type != "function_call" || idx != s.tool {
				if idx < s.toolsDone || (s.tool >= 0 && idx < s.tool) {
					return dst, errToolOrder
				}
				dst = s.closeItem(dst)
				dst = s.openCall(dst, idx, tc)
			}
			if a := tc.Function.Arguments; a != "" {
				s.args.WriteString(a)
				dst = s.head(dst, "response.function_call_arguments.delta")
				dst = s.itemRef(dst)
				dst = append(dst, `,"delta":`...)
				dst = chatwire.AppendString(dst, a)
				dst = append(dst, "}\n\n"...)
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
	}
	return dst, nil
}

// head starts an event: its name and the data's type and sequence number.
func (s *Stream) head(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, name...)
	dst = append(dst, `","sequence_number":`...)
	dst = strconv.AppendInt(dst, s.seq, 10)
	s.seq++
	return dst
}

// itemRef writes the open item's id and output index.
func (s *Stream) itemRef(dst []byte) []byte {
	dst = append(dst, `,"item_id":`...)
	dst = chatwire.AppendString(dst, s.resp.Output[s.open].ID)
	dst = append(dst, `,"output_index":`...)
	return strconv.AppendInt(dst, int64(s.open), 10)
}

// object appends an event whose body is key: v.
func (s *Stream) object(dst []byte, name, key string, v any, extra string) []byte {
	dst = s.head(dst, name)
	dst = append(dst, extra...)
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	b, _ := json.Marshal(v)
	dst = append(dst, b...)
	return append(dst, "}\n\n"...)
}

func (s *Stream) start(dst []byte, id string, created int64, model string) []byte {
	s.started = true
	s.resp = newResponse(id, created, model, &s.info.Echo)
	dst = s.object(dst, "response.created", "response", s.resp, "")
	return s.object(dst, "response.in_progress", "response", s.resp, "")
}

func (s *Stream) outputIndex() string { return `,"output_index":` + strconv.Itoa(s.open) }

func (s *Stream) openMessage(dst []byte) []byte {
	id := messageItemID(s.resp.ID)
	if n := len(s.resp.Output); n > 0 {
		id += "_" + strconv.Itoa(n)
	}
	s.resp.Output = append(s.resp.Output, Item{Type: "message", ID: id, Status: "in_progress", Role: "assistant", Content: []ContentPart{}})
	s.open = len(s.resp.Output) - 1
	s.text.Reset()
	dst = s.object(dst, "response.output_item.added", "item", &s.resp.Output[s.open], s.outputIndex())
	empty := ""
	return s.object(dst, "response.content_part.added", "part", ContentPart{Type: "output_text", Text: &empty, Annotations: []string{}},
		`,"item_id":`+quote(id)+s.outputIndex()+`,"content_index":0`)
}

func (s *Stream) openCall(dst []byte, idx int, tc *chatwire.ChunkToolCall) []byte {
	callID := tc.ID
	if callID == "" {
		callID = "call_gateway_" + strconv.Itoa(idx)
	}
	empty := ""
	s.resp.Output = append(s.resp.Output, Item{Type: "function_call", ID: callItemID(callID), Status: "in_progress",
		CallID: callID, Name: tc.Function.Name, Arguments: &empty})
	s.open, s.tool = len(s.resp.Output)-1, idx
	s.args.Reset()
	return s.object(dst, "response.output_item.added", "item", &s.resp.Output[s.open], s.outputIndex())
}

func quote(v string) string { return string(chatwire.AppendString(nil, v)) }

func (s *Stream) closeItem(dst []byte) []byte {
	if s.open < 0 {
		return dst
	}
	it := &s.resp.Output[s.open]
	ref := `,"item_id":` + quote(it.ID) + s.outputIndex()
	switch it.Type {
	case "message":
		text := s.text.String()
		dst = s.head(dst, "response.output_text.done")
		dst = append(dst, ref...)
		dst = append(dst, `,"content_index":0,"text":`...)
		dst = chatwire.AppendString(dst, text)
		dst = append(dst, `,"logprobs":[]}`+"\n\n"...)
		part := ContentPart{Type: "output_text", Text: &text, Annotations: []string{}}
		dst = s.object(dst, "response.content_part.done", "part", part, ref+`,"content_index":0`)
		it.Content = append(it.Content, part)
	case "function_call":
		args := s.args.String()
		it.Arguments = &args
		dst = s.head(dst, "response.function_call_arguments.done")
		dst = append(dst, ref...)
		dst = append(dst, `,"name":`...)
		dst = chatwire.AppendString(dst, it.Name)
		dst = append(dst, `,"arguments":`...)
		dst = chatwire.AppendString(dst, args)
		dst = append(dst, "}\n\n"...)
		s.toolsDone = s.tool + 1
	}
	it.Status = "completed"
	dst = s.object(dst, "response.output_item.done", "item", it, s.outputIndex())
	s.open = -1
	return dst
}

// End appends the closing events; fallback is the usage to report when
// the upstream sent none (the gateway's count).
func (s *Stream) End(fallback *chatwire.Usage, dst []byte) []byte {
	if s.ended {
		return dst
	}
	s.ended = true
	if !s.started {
		dst = s.start(dst, responseID(""), 0, s.info.Model)
	}
	dst = s.closeItem(dst)
	u := &s.usage
	if !s.haveUsage {
		u = fallback
	}
	s.resp.Usage = FromUsage(u)
	s.resp.finish(s.finish)
	name := "response.completed"
	if s.resp.Status == "incomplete" {
		name = "response.incomplete"
	}
	return s.object(dst, name, "response", s.resp, "")
}

// ErrorEvent appends the Responses API's error event, which its SDKs
// raise. seq is the stream's next sequence number (0 before any event).
func (s *Stream) ErrorEvent(code, msg string, dst []byte) []byte {
	dst = s.head(dst, "error")
	dst = append(dst, `,"code":`...)
	dst = chatwire.AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = chatwire.AppendString(dst, msg)
	return append(dst, `,"param":null}`+"\n\n"...)
}
