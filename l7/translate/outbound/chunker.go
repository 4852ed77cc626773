package outbound

import "github.com/infergate/infergate/l7/translate/chatwire"

// Chunker makes the chunks a provider stream's events become. Each chunk
// is built in storage the Chunker keeps, reused from event to event (the
// transport writes a chunk out before the decoder reads on), so that a
// stream allocates nothing per event: a provider kind's StreamDecoder
// holds one and emits through it.
type Chunker struct {
	// ID is the stream's id, set on every chunk it makes once the
	// provider has named one (else the transport's is used).
	ID string

	chunk  chatwire.Chunk
	choice [1]chatwire.ChunkChoice
	call   [1]chatwire.ChunkToolCall
	index  int
	finish string
}

// Delta emits a chunk whose one choice adds delta.
func (c *Chunker) Delta(emit func(*chatwire.Chunk), delta chatwire.Delta) {
	c.choice[0] = chatwire.ChunkChoice{Delta: delta}
	c.emitChoice(emit)
}

// Call emits a piece of the message's tool call i: its first (ID, Type
// and the function's name set) or a later one (arguments).
func (c *Chunker) Call(emit func(*chatwire.Chunk), i int, call chatwire.ChunkToolCall) {
	c.index = i
	call.Index = &c.index
	c.call[0] = call
	c.Delta(emit, chatwire.Delta{ToolCalls: c.call[:]})
}

// Finish emits the chunk that ends the choice for reason.
func (c *Chunker) Finish(emit func(*chatwire.Chunk), reason string) {
	c.finish = reason
	c.choice[0] = chatwire.ChunkChoice{FinishReason: &c.finish}
	c.emitChoice(emit)
}

// Usage emits the stream's usage chunk, which has no choice.
func (c *Chunker) Usage(emit func(*chatwire.Chunk), u *chatwire.Usage) {
	c.chunk = chatwire.Chunk{ID: c.ID, Usage: u}
	emit(&c.chunk)
}

func (c *Chunker) emitChoice(emit func(*chatwire.Chunk)) {
	c.chunk = chatwire.Chunk{ID: c.ID, Choices: c.choice[:]}
	emit(&c.chunk)
}
