package kvevents

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Bounds on one batch, so a hostile or broken publisher cannot make the
// gateway allocate without limit. vLLM batches one scheduler step's
// events: a few hundred blocks at most.
const (
	MaxPayloadBytes = 16 << 20
	maxEvents       = 1 << 16
	maxHashes       = 1 << 16
	maxTokens       = 1 << 20
	maxTagBytes     = 64
)

// Kind is an event's type.
type Kind uint8

// Event kinds, named as vLLM names the structs.
const (
	BlockStored Kind = iota + 1
	BlockRemoved
	AllBlocksCleared
)

func (k Kind) String() string {
	switch k {
	case BlockStored:
		return "BlockStored"
	case BlockRemoved:
		return "BlockRemoved"
	case AllBlocksCleared:
		return "AllBlocksCleared"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Event is one KV-cache event.
type Event struct {
	Kind Kind
	// Hashes are the blocks stored or removed, in prefix order for
	// BlockStored (each names the whole prefix up to it).
	Hashes []uint64
	// Parent is the hash of the block before Hashes[0] (HasParent false:
	// Hashes[0] is a prompt's first block).
	Parent    uint64
	HasParent bool
	// Tokens and BlockSize (BlockStored): the token ids of the blocks.
	Tokens    []uint32
	BlockSize int
}

// Batch is one published message.
type Batch struct {
	TS     float64
	Events []Event
	// Skipped counts events of unknown type, another medium or another
	// KV-cache group, which Decode leaves out.
	Skipped int
}

// Message is a batch with its frames' topic and sequence number.
type Message struct {
	Topic string
	Seq   uint64
	Batch Batch
}

// ErrFrames: a message without the three frames topic, sequence, payload.
var ErrFrames = errors.New("kvevents: want 3 frames (topic, 8-byte sequence, payload)")

// DecodeMessage decodes the frames of one ZeroMQ message.
func DecodeMessage(frames [][]byte) (Message, error) {
	if len(frames) != 3 || len(frames[1]) != 8 {
		return Message{}, ErrFrames
	}
	b, err := Decode(frames[2])
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: string(frames[0]), Seq: binary.BigEndian.Uint64(frames[1]), Batch: b}, nil
}

// Decode decodes a msgpack KVEventBatch in either of vLLM's two forms.
func Decode(payload []byte) (Batch, error) {
	if len(payload) > MaxPayloadBytes {
		return Batch{}, fmt.Errorf("kvevents: payload of %d bytes over %d", len(payload), MaxPayloadBytes)
	}
	d := msgpack.NewDecoder(bytes.NewReader(payload))
	var b Batch
	err := b.decode(d)
	if err != nil {
		return Batch{}, fmt.Errorf("kvevents: decode batch: %w", err)
	}
	return b, nil
}

func (b *Batch) decode(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if isMap(c) {
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		for range n {
			key, err := d.DecodeString()
			if err != nil {
				return err
			}
			switch key {
			case "ts":
				b.TS, err = d.DecodeFloat64()
			case "events":
				err = b.decodeEvents(d)
			default: // data_parallel_rank and fields to come
				err = d.Skip()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
		return nil
	}
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 2 {
		return fmt.Errorf("batch array of %d fields, want ts and events", n)
	}
	if b.TS, err = d.DecodeFloat64(); err != nil {
		return fmt.Errorf("ts: %w", err)
	}
	if err := b.decodeEvents(d); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	for range n - 2 {
		if err := d.Skip(); err != nil {
			return err
		}
	}
	return nil
}

func (b *Batch) decodeEvents(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n > maxEvents {
		return fmt.Errorf("%d events over %d", n, maxEvents)
	}
	b.Events = make([]Event, 0, max(n, 0))
	for i := range n {
		e, keep, err := decodeEvent(d)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if keep {
			b.Events = append(b.Events, e)
		} else {
			b.Skipped++
		}
	}
	return nil
}

// eventFields are the fields of one event, by name, as either form
// carries them.
type eventFields struct {
	e        Event
	tag      string
	medium   string
	groupIdx int64
}

// field decodes one named field into f.
func (f *eventFields) field(d *msgpack.Decoder, name string) error {
	var err error
	switch name {
	case "type":
		f.tag, err = decodeTag(d)
	case "block_hashes":
		f.e.Hashes, err = decodeHashes(d)
	case "parent_block_hash":
		f.e.Parent, f.e.HasParent, err = decodeOptHash(d)
	case "token_ids":
		f.e.Tokens, err = decodeTokens(d)
	case "block_size":
		var v int64
		v, err = d.DecodeInt64()
		if err == nil && (v < 1 || v > 1<<16) {
			err = fmt.Errorf("block_size %d outside [1, 65536]", v)
		}
		f.e.BlockSize = int(v)
	case "medium":
		f.medium, err = decodeOptString(d)
	case "group_idx":
		var c byte
		if c, err = d.PeekCode(); err == nil {
			if c == msgpcode.Nil {
				err = d.DecodeNil()
			} else {
				f.groupIdx, err = d.DecodeInt64()
			}
		}
	default: // lora_id, lora_name, extra_keys, spec kinds and fields to come
		err = d.Skip()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Positional field names of the array form, after the tag.
var (
	storedFields  = []string{"block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "lora_name", "extra_keys", "group_idx"}
	removedFields = []string{"block_hashes", "medium", "group_idx"}
)

func decodeEvent(d *msgpack.Decoder) (Event, bool, error) {
	c, err := d.PeekCode()
	if err != nil {
		return Event{}, false, err
	}
	f := eventFields{}
	if isMap(c) {
		n, err := d.DecodeMapLen()
		if err != nil {
			return Event{}, false, err
		}
		for range n {
			key, err := d.DecodeString()
			if err != nil {
				return Event{}, false, err
			}
			if err := f.field(d, key); err != nil {
				return Event{}, false, err
			}
		}
	} else {
		n, err := d.DecodeArrayLen()
		if err != nil {
			return Event{}, false, err
		}
		if n < 1 {
			return Event{}, false, errors.New("empty event array")
		}
		if f.tag, err = decodeTag(d); err != nil {
			return Event{}, false, fmt.Errorf("tag: %w", err)
		}
		var names []string
		switch f.tag {
		case "BlockStored":
			names = storedFields
		case "BlockRemoved":
			names = removedFields
		}
		for i := range n - 1 {
			name := ""
			if i < len(names) {
				name = names[i]
			}
			if err := f.field(d, name); err != nil {
				return Event{}, false, err
			}
		}
	}
	switch f.tag {
	case "BlockStored":
		f.e.Kind = BlockStored
		if f.e.BlockSize == 0 {
			return Event{}, false, errors.New("BlockStored without block_size")
		}
		if len(f.e.Tokens) != len(f.e.Hashes)*f.e.BlockSize {
			return Event{}, false, fmt.Errorf("BlockStored: %d tokens for %d blocks of %d", len(f.e.Tokens), len(f.e.Hashes), f.e.BlockSize)
		}
	case "BlockRemoved":
		f.e.Kind = BlockRemoved
	case "AllBlocksCleared":
		f.e.Kind = AllBlocksCleared
		return f.e, true, nil
	case "":
		return Event{}, false, errors.New("event without a type tag")
	default:
		return Event{}, false, nil // a kind to come: skipped
	}
	if (f.medium != "" && !strings.EqualFold(f.medium, "GPU")) || f.groupIdx > 0 {
		return Event{}, false, nil
	}
	return f.e, true, nil
}

func isMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

func decodeTag(d *msgpack.Decoder) (string, error) {
	s, err := d.DecodeString()
	if err != nil {
		return "", err
	}
	if len(s) > maxTagBytes {
		return "", fmt.Errorf("tag of %d bytes", len(s))
	}
	return s, nil
}

func decodeOptString(d *msgpack.Decoder) (string, error) {
	c, err := d.PeekCode()
	if err != nil {
		return "", err
	}
	if c == msgpcode.Nil {
		return "", d.DecodeNil()
	}
	return decodeTag(d)
}

// decodeHash reads an int hash (signed or unsigned) or a bytes hash,
// folded to its low 64 bits as vLLM folds it for int hashes.
func decodeHash(d *msgpack.Decoder) (uint64, error) {
	c, err := d.PeekCode()
	if err != nil {
		return 0, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, errors.New("nil block hash")
	case msgpcode.IsBin(c) || msgpcode.IsString(c):
		b, err := d.DecodeBytes()
		if err != nil {
			return 0, err
		}
		if len(b) == 0 || len(b) > 64 {
			return 0, fmt.Errorf("bytes block hash of %d bytes", len(b))
		}
		var tail [8]byte
		copy(tail[8-min(len(b), 8):], b[max(len(b)-8, 0):])
		return binary.BigEndian.Uint64(tail[:]), nil
	case c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64 || (msgpcode.IsFixedNum(c) && int8(c) < 0):
		v, err := d.DecodeInt64()
		return uint64(v), err
	case msgpcode.IsFixedNum(c) || c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32 || c == msgpcode.Uint64:
		return d.DecodeUint64()
	}
	return 0, fmt.Errorf("block hash of msgpack type 0x%02x", c)
}

func decodeOptHash(d *msgpack.Decoder) (uint64, bool, error) {
	c, err := d.PeekCode()
	if err != nil {
		return 0, false, err
	}
	if c == msgpcode.Nil {
		return 0, false, d.DecodeNil()
	}
	h, err := decodeHash(d)
	return h, err == nil, err
}

func decodeHashes(d *msgpack.Decoder) ([]uint64, error) {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n > maxHashes {
		return nil, fmt.Errorf("%d hashes over %d", n, maxHashes)
	}
	out := make([]uint64, max(n, 0))
	for i := range out {
		if out[i], err = decodeHash(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeTokens(d *msgpack.Decoder) ([]uint32, error) {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n > maxTokens {
		return nil, fmt.Errorf("%d tokens over %d", n, maxTokens)
	}
	out := make([]uint32, max(n, 0))
	for i := range out {
		v, err := d.DecodeInt64()
		if err != nil {
			return nil, err
		}
		if v < 0 || v > 1<<32-1 {
			return nil, fmt.Errorf("token id %d", v)
		}
		out[i] = uint32(v)
	}
	return out, nil
}

// Encode writes b in vLLM's array-like form ([ts, [[tag, ...], ...]]),
// the form both vLLM's array_like releases and llm-d's decoder use; for
// publishers such as test/mockllm.
func Encode(b *Batch) ([]byte, error) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	enc := func() error {
		if err := e.EncodeArrayLen(2); err != nil {
			return err
		}
		if err := e.EncodeFloat64(b.TS); err != nil {
			return err
		}
		if err := e.EncodeArrayLen(len(b.Events)); err != nil {
			return err
		}
		for i := range b.Events {
			if err := encodeEvent(e, &b.Events[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := enc(); err != nil {
		return nil, fmt.Errorf("kvevents: encode: %w", err)
	}
	return buf.Bytes(), nil
}

func encodeEvent(e *msgpack.Encoder, ev *Event) error {
	hashes := func() error {
		if err := e.EncodeArrayLen(len(ev.Hashes)); err != nil {
			return err
		}
		for _, h := range ev.Hashes {
			if err := e.EncodeUint(h); err != nil {
				return err
			}
		}
		return nil
	}
	switch ev.Kind {
	case BlockStored:
		// tag, block_hashes, parent_block_hash, token_ids, block_size,
		// lora_id, medium
		if err := e.EncodeArrayLen(7); err != nil {
			return err
		}
		if err := e.EncodeString("BlockStored"); err != nil {
			return err
		}
		if err := hashes(); err != nil {
			return err
		}
		var err error
		if ev.HasParent {
			err = e.EncodeUint(ev.Parent)
		} else {
			err = e.EncodeNil()
		}
		if err != nil {
			return err
		}
		if err := e.EncodeArrayLen(len(ev.Tokens)); err != nil {
			return err
		}
		for _, t := range ev.Tokens {
			if err := e.EncodeUint(uint64(t)); err != nil {
				return err
			}
		}
		if err := e.EncodeInt(int64(ev.BlockSize)); err != nil {
			return err
		}
		if err := e.EncodeNil(); err != nil {
			return err
		}
		return e.EncodeString("GPU")
	case BlockRemoved:
		if err := e.EncodeArrayLen(3); err != nil {
			return err
		}
		if err := e.EncodeString("BlockRemoved"); err != nil {
			return err
		}
		if err := hashes(); err != nil {
			return err
		}
		return e.EncodeString("GPU")
	case AllBlocksCleared:
		if err := e.EncodeArrayLen(1); err != nil {
			return err
		}
		return e.EncodeString("AllBlocksCleared")
	}
	return fmt.Errorf("event kind %v", ev.Kind)
}

// Frames are the three frames of a message publishing b with seq.
func Frames(topic string, seq uint64, payload []byte) [][]byte {
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	return [][]byte{[]byte(topic), s[:], payload}
}
