package cache

import (
	"encoding/binary"
	"errors"
)

// Entry is one stored answer.
type Entry struct {
	// Body is the whole answer as a non-streaming client receives it.
	Body []byte
	// PromptTokens and CompletionTokens are the answer's usage.
	PromptTokens, CompletionTokens int64
}

// entryOverhead approximates an entry's memory beyond its body (list
// element, map slot, key, struct).
const entryOverhead = 160

// size is what the entry counts against the memory bound.
func (e *Entry) size() int64 { return int64(len(e.Body)) + entryOverhead }

const entryVersion = 1

var errBadEntry = errors.New("cache: malformed stored entry")

// marshal is the entry's Redis value: a version byte, the two counts, the body.
func (e *Entry) marshal() []byte {
	b := make([]byte, 17, 17+len(e.Body))
	b[0] = entryVersion
	binary.LittleEndian.PutUint64(b[1:], uint64(e.PromptTokens))
	binary.LittleEndian.PutUint64(b[9:], uint64(e.CompletionTokens))
	return append(b, e.Body...)
}

func unmarshalEntry(b []byte) (*Entry, error) {
	if len(b) < 18 || b[0] != entryVersion {
		return nil, errBadEntry
	}
	return &Entry{PromptTokens: int64(binary.LittleEndian.Uint64(b[1:])),
		CompletionTokens: int64(binary.LittleEndian.Uint64(b[9:])), Body: b[17:]}, nil
}
