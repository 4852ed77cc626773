package gateway

import (
	"slices"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/tokens"
)

// countStage counts the prompt's tokens with the model's tokenizer, after
// redaction (what the model will read), for the limit stage's reservation
// and for billing when upstream reports no usage.
//
// Reads: x.req, x.counter. Writes: x.promptTokens.
type countStage struct {
	// count is countPrompt; tests observe it.
	count func(*tokens.Counter, *openai.Request, *[]tokens.Message) int
}

// countScratch is the counter's messages, kept across pooled requests.
type countScratch struct{ msgs []tokens.Message }

func (s *countScratch) reset() {
	clear(s.msgs)
	s.msgs = s.msgs[:0]
}

func newCountStage(*Gateway, *config) (stage, error) { return &countStage{count: countPrompt}, nil }

func (s *countStage) serve(x *exchange) *openai.Error {
	x.promptTokens = int64(s.count(x.counter, &x.req, &x.scratch.count.msgs))
	return nil
}

// countPrompt counts what the model reads, after redaction.
func countPrompt(c *tokens.Counter, r *openai.Request, scratch *[]tokens.Message) int {
	n := r.TokenInputs
	if r.Endpoint != openai.ChatCompletions {
		for i := range r.Texts {
			n += c.Count(r.Texts[i].Value)
		}
		return n
	}
	msgs := slices.Grow((*scratch)[:0], len(r.Messages))[:len(r.Messages)]
	*scratch = msgs
	for i := range r.Messages {
		m := &r.Messages[i]
		msgs[i] = tokens.Message{Role: m.Role, Name: m.Name}
		if len(m.ToolCalls) > 0 && string(m.ToolCalls) != "null" {
			msgs[i].Extra = append(msgs[i].Extra, string(m.ToolCalls))
		}
		if m.ToolCallID != "" {
			msgs[i].Extra = append(msgs[i].Extra, m.ToolCallID)
		}
	}
	for i := range r.Texts {
		t := &r.Texts[i]
		switch t.Kind {
		case openai.KindContent:
			if t.Part < 0 {
				msgs[t.Message].Content = t.Value
			} else {
				msgs[t.Message].Parts = append(msgs[t.Message].Parts, t.Value)
			}
		case openai.KindToolCallArguments:
			// Counted with the message's tool_calls (Extra above).
		default:
			// Tool and function definitions, response schemas,
			// refusals: read by the model, so counted and billed.
			n += c.Count(t.Value)
		}
	}
	return n + c.CountChat(msgs)
}
