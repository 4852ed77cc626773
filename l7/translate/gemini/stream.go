package gemini

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// Stream implements outbound.Translator.
func (t *Translator) Stream(body io.Reader, r *chatwire.Request) outbound.StreamDecoder {
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
	usage    *chatwire.Usage
	out      outbound.Chunker
}

func (d *decoder) Next(emit func(*chatwire.Chunk)) error {
	_, data, err := d.er.Next()
	if err == io.EOF {
		if !d.finished {
			return io.ErrUnexpectedEOF
		}
		if d.usage != nil {
			d.out.Usage(emit, d.usage)
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
		d.out.ID = "chatcmpl-" + gr.ResponseID
	}
	if gr.UsageMetadata != nil {
		d.usage = gr.UsageMetadata.chat()
	}
	if !d.started {
		d.started = true
		d.out.Delta(emit, chatwire.Delta{Role: "assistant", Content: new(string)})
	}
	for _, c := range gr.Candidates {
		if c.Index != 0 {
			continue // one choice is streamed
		}
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					fc := p.FunctionCall
					d.out.Call(emit, d.nCalls, chatwire.ChunkToolCall{ID: fc.callID(d.nCalls), Type: "function",
						Function: chatwire.ChunkFunctionCall{Name: fc.Name, Arguments: outbound.CallArguments(fc.Args)}})
					d.nCalls++
				case p.Thought:
					d.out.Delta(emit, chatwire.Delta{ReasoningContent: p.Text})
				case p.Text != "":
					s := p.Text
					d.out.Delta(emit, chatwire.Delta{Content: &s})
				}
			}
		}
		if c.FinishReason != "" && !d.finished {
			d.finished = true
			fr := FinishReason(c.FinishReason, d.nCalls > 0)
			d.out.Finish(emit, fr)
		}
	}
	return nil
}
