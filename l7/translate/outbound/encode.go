package outbound

import (
	"encoding/json"
	"strconv"

	"github.com/infergate/infergate/internal/jsonstr"
	"github.com/infergate/infergate/l7/translate/chatwire"
)

// appendChunk writes c as JSON, as json.Marshal would (field order and
// omissions included), without its reflection and allocations: a stream
// writes one per provider event. Usage, once per stream, and the fields
// the providers' streams never set go through json.Marshal.
func appendChunk(b []byte, c *chatwire.Chunk) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"object":`...)
	b = appendString(b, string(c.Object))
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, c.Created, 10)
	b = append(b, `,"model":`...)
	b = appendString(b, c.Model)
	b = append(b, `,"choices":[`...)
	for i := range c.Choices {
		ch := &c.Choices[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(ch.Index), 10)
		b = append(b, `,"delta":{`...)
		d := &ch.Delta
		sep := false
		field := func(name string) {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, `":`...)
		}
		if d.Role != "" {
			field("role")
			b = appendString(b, d.Role)
		}
		if d.Content != nil {
			field("content")
			b = appendString(b, *d.Content)
		}
		if d.Refusal != nil {
			field("refusal")
			b = appendString(b, *d.Refusal)
		}
		if d.ReasoningContent != "" {
			field("reasoning_content")
			b = appendString(b, d.ReasoningContent)
		}
		if len(d.ToolCalls) > 0 {
			field("tool_calls")
			b = append(b, '[')
			for j := range d.ToolCalls {
				tc := &d.ToolCalls[j]
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, '{')
				if tc.Index != nil {
					b = append(b, `"index":`...)
					b = strconv.AppendInt(b, int64(*tc.Index), 10)
					b = append(b, ',')
				}
				if tc.ID != "" {
					b = append(b, `"id":`...)
					b = appendString(b, tc.ID)
					b = append(b, ',')
				}
				if tc.Type != "" {
					b = append(b, `"type":`...)
					b = appendString(b, tc.Type)
					b = append(b, ',')
				}
				b = append(b, `"function":{`...)
				if tc.Function.Name != "" {
					b = append(b, `"name":`...)
					b = appendString(b, tc.Function.Name)
					b = append(b, ',')
				}
				b = append(b, `"arguments":`...)
				b = appendString(b, tc.Function.Arguments)
				b = append(b, `}}`...)
			}
			b = append(b, ']')
		}
		b = append(b, `},"finish_reason":`...)
		if ch.FinishReason == nil {
			b = append(b, "null"...)
		} else {
			b = appendString(b, *ch.FinishReason)
		}
		if len(ch.StopReason) > 0 {
			b = appendMarshaled(b, `,"stop_reason":`, ch.StopReason)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if c.Usage != nil {
		b = appendMarshaled(b, `,"usage":`, c.Usage)
	}
	if c.Error != nil {
		b = appendMarshaled(b, `,"error":`, c.Error)
	}
	return append(b, '}')
}

// appendMarshaled writes a field that json.Marshal writes: one the
// providers' streams send once (usage) or never (stop_reason, error).
func appendMarshaled(b []byte, field string, v any) []byte {
	j, _ := json.Marshal(v)
	b = append(b, field...)
	return append(b, j...)
}

// appendString writes s as json.Marshal does (HTML-escaped), so the
// chunk encoding stays byte for byte json.Marshal's.
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, true) }
