package messages

import (
	"errors"
	"strconv"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Stream translates one chat-completions stream into Anthropic's events,
// chunk by chunk: message_start and ping with the first chunk, a content
// block per run of text or per tool call (content_block_start, its
// text_delta or input_json_delta events, content_block_stop), and at the
// end message_delta (stop reason and usage) and message_stop. It keeps
// only the block it is in and the finish reason and usage seen so far,
// never the answer's text.
type Stream struct {
	info  Info
	input int64 // the gateway's prompt count, for message_start
	chunk chatwire.Chunk

	started bool
	next    int // index of the next content block
	open    blockKind
	tool    int // chat tool_call index of the open tool block
	// toolsDone is how many chat tool calls have had their block closed:
	// calls stream in order, so a fragment for an earlier one cannot be
	// placed and is an upstream fault.
	toolsDone int
	sawTool   bool

	finish        string
	stop          string
	stopNamed     bool
	usage         chatwire.Usage
	haveUsage     bool
	id, model     string
	ended, failed bool
}

type blockKind uint8

const (
	blockNone blockKind = iota
	blockText
	blockTool
)

// NewStream starts a stream's translation; input is the gateway's count of
// the prompt, reported in message_start (Anthropic's own event carries
// the input tokens there; the upstream's figure follows in message_delta).
func NewStream(info Info, input int64) *Stream {
	return &Stream{info: info, input: input, tool: -1}
}

var errToolOrder = errors.New("the upstream interleaved the fragments of two tool calls")

// Chunk appends the events for one chat chunk's data to dst.
func (s *Stream) Chunk(data []byte, dst []byte) ([]byte, error) {
	if err := chatwire.ParseChunk(data, &s.chunk); err != nil {
		return dst, err
	}
	c := &s.chunk
	if !s.started {
		s.id, s.model = messageID(c.ID), c.Model
		if s.model == "" {
			s.model = s.info.Model
		}
		dst = s.start(dst)
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
			if s.open != blockText {
				dst = s.closeBlock(dst)
				dst = s.openText(dst)
			}
			dst = event(dst, "content_block_delta")
			dst = append(dst, `{"type":"content_block_delta","index":`...)
			dst = strconv.AppendInt(dst, int64(s.next-1), 10)
			dst = append(dst, `,"delta":{"type":"text_delta","text":`...)
			dst = appendString(dst, text)
			dst = append(dst, "}}\n\n"...)
		}
		for j := range d.ToolCalls {
			tc := &d.ToolCalls[j]
			idx := j
			if tc.Index != nil {
				idx = *tc.Index
			}
			if s.open != blockTool || idx != s.tool {
				if idx < s.toolsDone || (s.open == blockTool && idx < s.tool) {
					return dst, errToolOrder
				}
				dst = s.closeBlock(dst)
				dst = s.openTool(dst, idx, tc)
			}
			if a := tc.Function.Arguments; a != "" {
				dst = event(dst, "content_block_delta")
				dst = append(dst, `{"type":"content_block_delta","index":`...)
				dst = strconv.AppendInt(dst, int64(s.next-1), 10)
				dst = append(dst, `,"delta":{"type":"input_json_delta","partial_json":`...)
				dst = appendString(dst, a)
				dst = append(dst, "}}\n\n"...)
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
			s.stop, s.stopNamed = chatwire.StopString(ch.StopReason)
		}
	}
	return dst, nil
}

func (s *Stream) start(dst []byte) []byte {
	s.started = true
	dst = event(dst, "message_start")
	dst = append(dst, `{"type":"message_start","message":{"id":`...)
	dst = appendString(dst, s.id)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = appendString(dst, s.model)
	dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":`...)
	dst = strconv.AppendInt(dst, s.input, 10)
	dst = append(dst, `,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`+"\n\n"...)
	dst = event(dst, "ping")
	return append(dst, `{"type":"ping"}`+"\n\n"...)
}

func (s *Stream) openText(dst []byte) []byte {
	s.open = blockText
	dst = event(dst, "content_block_start")
	dst = append(dst, `{"type":"content_block_start","index":`...)
	dst = strconv.AppendInt(dst, int64(s.next), 10)
	s.next++
	return append(dst, `,"content_block":{"type":"text","text":""}}`+"\n\n"...)
}

func (s *Stream) openTool(dst []byte, idx int, tc *chatwire.ChunkToolCall) []byte {
	s.open, s.tool, s.sawTool = blockTool, idx, true
	dst = event(dst, "content_block_start")
	dst = append(dst, `{"type":"content_block_start","index":`...)
	dst = strconv.AppendInt(dst, int64(s.next), 10)
	s.next++
	dst = append(dst, `,"content_block":{"type":"tool_use","id":`...)
	dst = appendString(dst, toolID(tc.ID))
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, tc.Function.Name)
	return append(dst, `,"input":{}}}`+"\n\n"...)
}

func (s *Stream) closeBlock(dst []byte) []byte {
	if s.open == blockNone {
		return dst
	}
	if s.open == blockTool {
		s.toolsDone = s.tool + 1
	}
	s.open = blockNone
	dst = event(dst, "content_block_stop")
	dst = append(dst, `{"type":"content_block_stop","index":`...)
	dst = strconv.AppendInt(dst, int64(s.next-1), 10)
	return append(dst, "}\n\n"...)
}

// End appends the closing events. fallback is the usage to report when
// the upstream sent none (the gateway's count). A stream that never
// started gets its message_start first, so the client sees a whole
// message.
func (s *Stream) End(fallback *chatwire.Usage, dst []byte) []byte {
	if s.ended {
		return dst
	}
	s.ended = true
	if !s.started {
		s.id, s.model = messageID(""), s.info.Model
		dst = s.start(dst)
	}
	dst = s.closeBlock(dst)
	u := &s.usage
	if !s.haveUsage {
		u = fallback
	}
	au := FromUsage(u)
	reason, seq := StopReason(s.finish, s.stop, s.stopNamed, s.info.StopSequences)
	if s.sawTool && reason == "end_turn" {
		reason = "tool_use"
	}
	dst = event(dst, "message_delta")
	dst = append(dst, `{"type":"message_delta","delta":{"stop_reason":`...)
	dst = appendString(dst, reason)
	dst = append(dst, `,"stop_sequence":`...)
	if seq != nil {
		dst = appendString(dst, *seq)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `},"usage":{"input_tokens":`...)
	dst = strconv.AppendInt(dst, au.InputTokens, 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, au.OutputTokens, 10)
	dst = append(dst, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, au.CacheReadInputTokens, 10)
	dst = append(dst, "}}\n\n"...)
	dst = event(dst, "message_stop")
	return append(dst, `{"type":"message_stop"}`+"\n\n"...)
}

// Usage is the upstream's usage seen in the stream, if any.
func (s *Stream) Usage() (chatwire.Usage, bool) { return s.usage, s.haveUsage }

// ErrorEvent appends Anthropic's error event, which its SDKs raise.
func ErrorEvent(status int, msg string, dst []byte) []byte {
	dst = event(dst, "error")
	dst = append(dst, ErrorBody(status, msg)...)
	return append(dst, "\n\n"...)
}

func event(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	return append(dst, "\ndata: "...)
}

func appendString(dst []byte, s string) []byte { return chatwire.AppendString(dst, s) }
