package anthropicout

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// Stream implements outbound.Translator.
func (t *Translator) Stream(body io.Reader, r *chatwire.Request) outbound.StreamDecoder {
	return &decoder{er: openai.NewEventReader(bufio.NewReaderSize(body, 16<<10)), tools: map[int]int{}, structured: isStructured(r), jsonBlock: -1}
}

// decoder turns Messages stream events into chunks: text_delta to content,
// thinking_delta to reasoning_content, a tool_use block's start to a tool
// call's id and name and its input_json_delta to its arguments;
// message_delta's stop_reason to finish_reason and its usage (with
// message_start's input usage) to the usage chunk; message_stop ends.
type decoder struct {
	er    *openai.EventReader
	usage usage
	// tools maps a content block index to its tool call index.
	tools    map[int]int
	nTools   int
	finished bool
	// structured: the request asked for JSON through StructuredTool,
	// whose block (jsonBlock, -1 before it starts) streams as content.
	structured bool
	jsonBlock  int
	ev         event
	out        outbound.Chunker
}

type event struct {
	Type    string `json:"type"`
	Message *struct {
		ID    string `json:"id"`
		Model string `json:"model"`
		Usage usage  `json:"usage"`
	} `json:"message"`
	Index        int `json:"index"`
	ContentBlock *struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
		Text string `json:"text"`
	} `json:"content_block"`
	Delta *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		Thinking    string `json:"thinking"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *usage `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// ErrStreamError is a provider error event in the middle of a stream.
var ErrStreamError = errors.New("provider sent an error event")

func (d *decoder) Next(emit func(*chatwire.Chunk)) error {
	if d.finished {
		return io.EOF
	}
	_, data, err := d.er.Next()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF // ended without message_stop
		}
		return err
	}
	if data == nil {
		return nil
	}
	d.ev = event{}
	if err := json.Unmarshal(data, &d.ev); err != nil {
		return fmt.Errorf("provider stream event: %w", err)
	}
	ev := &d.ev
	switch ev.Type {
	case "message_start":
		if ev.Message != nil {
			d.out.ID = ev.Message.ID
			d.usage = ev.Message.Usage
		}
		d.out.Delta(emit, chatwire.Delta{Role: "assistant", Content: new(string)})
	case "content_block_start":
		if cb := ev.ContentBlock; cb != nil && cb.Type == "tool_use" && d.structured && cb.Name == StructuredTool {
			d.jsonBlock = ev.Index
		} else if cb != nil && cb.Type == "tool_use" {
			i := d.nTools
			d.nTools++
			d.tools[ev.Index] = i
			d.out.Call(emit, i, chatwire.ChunkToolCall{ID: cb.ID, Type: "function", Function: chatwire.ChunkFunctionCall{Name: cb.Name}})
		} else if cb != nil && cb.Type == "text" && cb.Text != "" {
			s := cb.Text
			d.out.Delta(emit, chatwire.Delta{Content: &s})
		}
	case "content_block_delta":
		if ev.Delta == nil {
			return nil
		}
		switch ev.Delta.Type {
		case "text_delta":
			d.out.Delta(emit, chatwire.Delta{Content: &ev.Delta.Text})
		case "thinking_delta":
			d.out.Delta(emit, chatwire.Delta{ReasoningContent: ev.Delta.Thinking})
		case "input_json_delta":
			if ev.Index == d.jsonBlock {
				if ev.Delta.PartialJSON != "" {
					d.out.Delta(emit, chatwire.Delta{Content: &ev.Delta.PartialJSON})
				}
				return nil
			}
			i, ok := d.tools[ev.Index]
			if !ok || ev.Delta.PartialJSON == "" {
				return nil
			}
			d.out.Call(emit, i, chatwire.ChunkToolCall{Function: chatwire.ChunkFunctionCall{Arguments: ev.Delta.PartialJSON}})
		}
	case "message_delta":
		if ev.Usage != nil {
			// message_delta's usage is cumulative.
			d.usage.OutputTokens = ev.Usage.OutputTokens
			if ev.Usage.InputTokens > 0 {
				d.usage.InputTokens = ev.Usage.InputTokens
			}
		}
		if ev.Delta != nil && ev.Delta.StopReason != "" {
			fr := FinishReason(ev.Delta.StopReason)
			if fr == chatwire.FinishToolCalls && d.jsonBlock >= 0 && d.nTools == 0 {
				fr = chatwire.FinishStop
			}
			d.out.Finish(emit, fr)
		}
	case "message_stop":
		d.finished = true
		d.out.Usage(emit, d.usage.chat())
		return io.EOF
	case "error":
		if ev.Error != nil {
			return fmt.Errorf("%w: %s", ErrStreamError, outbound.Clip(ev.Error.Type))
		}
		return ErrStreamError
	}
	return nil // ping and unknown events
}
