package bedrock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// Stream implements outbound.Translator.
func (t *Translator) Stream(body io.Reader, r *chatwire.Request) outbound.StreamDecoder {
	return &decoder{es: NewDecoder(body), tools: map[int]int{}, structured: outbound.Structured(r), jsonBlock: -1}
}

// ErrException is an exception message in the stream (throttling, a
// validation or model error after the stream began).
var ErrException = errors.New("provider stream exception")

// decoder maps ConverseStream events (messageStart, contentBlockStart,
// contentBlockDelta, contentBlockStop, messageStop, metadata) to chunks.
// The stream's end is metadata (usage) after messageStop; the framing's
// end before messageStop is a broken stream.
type decoder struct {
	es       *Decoder
	tools    map[int]int
	nTools   int
	stopped  bool
	usage    *chatwire.Usage
	ev       streamEvent
	out      outbound.Chunker
	finished bool
	// structured: the request asked for JSON through the forced schema
	// tool, whose block (jsonBlock, -1 before it starts) streams as content.
	structured bool
	jsonBlock  int
}

type streamEvent struct {
	Role              string `json:"role"`
	ContentBlockIndex int    `json:"contentBlockIndex"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta *struct {
		Text    *string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
		ReasoningContent *struct {
			Text string `json:"text"`
		} `json:"reasoningContent"`
	} `json:"delta"`
	StopReason string `json:"stopReason"`
	Usage      *usage `json:"usage"`
	Message    string `json:"message"`
}

func (d *decoder) Next(emit func(*chatwire.Chunk)) error {
	if d.finished {
		return io.EOF
	}
	m, err := d.es.Read()
	if err == io.EOF {
		if d.stopped {
			d.finish(emit)
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if mt := m.Get(":message-type"); mt != "event" {
		return fmt.Errorf("%w: %s", ErrException, outbound.Clip(m.Get(":exception-type")+m.Get(":error-code")))
	}
	d.ev = streamEvent{}
	if err := json.Unmarshal(m.Payload, &d.ev); err != nil {
		return fmt.Errorf("provider stream event: %w", err)
	}
	ev := &d.ev
	switch m.Get(":event-type") {
	case "messageStart":
		d.out.Delta(emit, chatwire.Delta{Role: "assistant", Content: new(string)})
	case "contentBlockStart":
		if ev.Start != nil && ev.Start.ToolUse != nil && d.structured && ev.Start.ToolUse.Name == outbound.StructuredTool {
			d.jsonBlock = ev.ContentBlockIndex
		} else if ev.Start != nil && ev.Start.ToolUse != nil {
			i := d.nTools
			d.nTools++
			d.tools[ev.ContentBlockIndex] = i
			d.out.Call(emit, i, chatwire.ChunkToolCall{ID: ev.Start.ToolUse.ToolUseID, Type: "function",
				Function: chatwire.ChunkFunctionCall{Name: ev.Start.ToolUse.Name}})
		}
	case "contentBlockDelta":
		switch dl := ev.Delta; {
		case dl == nil:
		case dl.Text != nil:
			d.out.Delta(emit, chatwire.Delta{Content: dl.Text})
		case dl.ToolUse != nil && ev.ContentBlockIndex == d.jsonBlock:
			if dl.ToolUse.Input != "" {
				d.out.Delta(emit, chatwire.Delta{Content: &dl.ToolUse.Input})
			}
		case dl.ToolUse != nil:
			i, ok := d.tools[ev.ContentBlockIndex]
			if ok && dl.ToolUse.Input != "" {
				d.out.Call(emit, i, chatwire.ChunkToolCall{Function: chatwire.ChunkFunctionCall{Arguments: dl.ToolUse.Input}})
			}
		case dl.ReasoningContent != nil && dl.ReasoningContent.Text != "":
			d.out.Delta(emit, chatwire.Delta{ReasoningContent: dl.ReasoningContent.Text})
		}
	case "messageStop":
		d.stopped = true
		fr := FinishReason(ev.StopReason)
		if fr == chatwire.FinishToolCalls && d.jsonBlock >= 0 && d.nTools == 0 {
			fr = chatwire.FinishStop
		}
		d.out.Finish(emit, fr)
	case "metadata":
		if ev.Usage != nil {
			d.usage = ev.Usage.chat()
		}
		if d.stopped {
			d.finish(emit)
			return io.EOF
		}
	}
	return nil
}

func (d *decoder) finish(emit func(*chatwire.Chunk)) {
	d.finished = true
	if d.usage != nil {
		d.out.Usage(emit, d.usage)
	}
}
