package gemini

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// Stream implements outbound.Translator.
func (t *Translator) Stream(body io.Reader, r *outbound.Request) outbound.StreamDecoder {
	return &decoder{er: openai.NewEventReader(bufio.NewReaderSize(body, 16<<10))}
}

// decoder maps each streamed GenerateContentResponse (one SSE event) to
// chunks. Gemini has no end event: the stream ends when the HTTP body
// does, after a candidate with a finishReason; a body that ends before one
// is a broken stream. usageMetadata is cumulative: the last one is the
// usage chunk.
type decoder struct {
	er       *openai.EventReader
	started  bool
	finished bool
	nCalls   int
	usage    *outbound.Usage
	id       string
	chunk    outbound.Chunk
	choice   [1]outbound.ChunkChoice
	call     [1]outbound.ChunkToolCall
}

func (d *decoder) Next(emit func(*outbound.Chunk)) error {
	_, data, err := d.er.Next()
	if err == io.EOF {
		if !d.finished {
			return io.ErrUnexpectedEOF
		}
		if d.usage != nil {
			d.chunk = outbound.Chunk{ID: d.id, Usage: d.usage}
			emit(&d.chunk)
		}
		return io.EOF
	}
	if err != nil {
		return err
	}
	if data == nil {
		return nil
	}
	var gr generateResponse
	if err := json.Unmarshal(data, &gr); err != nil {
		return fmt.Errorf("provider stream event: %w", err)
	}
	if gr.ResponseID != "" {
		d.id = "chatcmpl-" + gr.ResponseID
	}
	if gr.UsageMetadata != nil {
		d.usage = gr.UsageMetadata.chat()
	}
	if !d.started {
		d.started = true
		d.emitDelta(emit, outbound.Delta{Role: "assistant", Content: new(string)})
	}
	for _, c := range gr.Candidates {
		if c.Index != 0 {
			continue // one choice is streamed
		}
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					args := string(p.FunctionCall.Args)
					if args == "" {
						args = "{}"
					}
					id := p.FunctionCall.ID
					if id == "" {
						id = "call_" + strconv.Itoa(d.nCalls)
					}
					d.call[0] = outbound.ChunkToolCall{Index: d.nCalls, ID: id, Type: "function", Function: outbound.ChunkFunctionCall{Name: p.FunctionCall.Name, Arguments: args}}
					d.nCalls++
					d.emitDelta(emit, outbound.Delta{ToolCalls: d.call[:]})
				case p.Thought:
					d.emitDelta(emit, outbound.Delta{ReasoningContent: p.Text})
				case p.Text != "":
					s := p.Text
					d.emitDelta(emit, outbound.Delta{Content: &s})
				}
			}
		}
		if c.FinishReason != "" && !d.finished {
			d.finished = true
			fr := FinishReason(c.FinishReason, d.nCalls > 0)
			d.chunk = outbound.Chunk{ID: d.id}
			d.choice[0] = outbound.ChunkChoice{FinishReason: &fr}
			d.chunk.Choices = d.choice[:]
			emit(&d.chunk)
		}
	}
	return nil
}

func (d *decoder) emitDelta(emit func(*outbound.Chunk), delta outbound.Delta) {
	d.chunk = outbound.Chunk{ID: d.id}
	d.choice[0] = outbound.ChunkChoice{Delta: delta}
	d.chunk.Choices = d.choice[:]
	emit(&d.chunk)
}
