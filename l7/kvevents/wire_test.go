package kvevents

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fixture builds msgpack bytes by hand: hex for codes and numbers, and
// fixstr for the short strings vLLM sends (tags, field names, media).
func fixture(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		if s, ok := strings.CutPrefix(p, "s:"); ok {
			b = append(b, 0xa0|byte(len(s)))
			b = append(b, s...)
			continue
		}
		h, err := hex.DecodeString(strings.ReplaceAll(p, " ", ""))
		if err != nil {
			panic(err)
		}
		b = append(b, h...)
	}
	return b
}

// vLLM's array_like form: [ts, [events...], dp_rank], each event
// [tag, fields...] in the structs' field order; a CPU-medium event is
// left out.
func TestDecodeArrayForm(t *testing.T) {
	payload := fixture(
		"93", "cb 3ff8000000000000", // ts 1.5
		"94",
		"97", "s:BlockStored", "92 cf 1122334455667788 07", "c0", "94 01 02 03 04", "02", "c0", "s:GPU",
		"93", "s:BlockRemoved", "91 07", "s:GPU",
		"91", "s:AllBlocksCleared",
		"97", "s:BlockStored", "91 09", "07", "92 05 06", "02", "c0", "s:CPU",
		"00", // data_parallel_rank
	)
	b, err := Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	if b.TS != 1.5 || len(b.Events) != 3 || b.Skipped != 1 {
		t.Fatalf("batch %+v", b)
	}
	st := b.Events[0]
	if st.Kind != BlockStored || !slices.Equal(st.Hashes, []uint64{0x1122334455667788, 7}) || st.HasParent ||
		!slices.Equal(st.Tokens, []uint32{1, 2, 3, 4}) || st.BlockSize != 2 {
		t.Fatalf("stored %+v", st)
	}
	if rm := b.Events[1]; rm.Kind != BlockRemoved || !slices.Equal(rm.Hashes, []uint64{7}) {
		t.Fatalf("removed %+v", rm)
	}
	if b.Events[2].Kind != AllBlocksCleared {
		t.Fatalf("cleared %+v", b.Events[2])
	}
}

// Later vLLM's map form: {"ts", "events", "data_parallel_rank"}, each
// event a map tagged by "type"; a bytes hash folds to its last 8 bytes
// big-endian, a negative int hash keeps its bits, unknown fields and
// event types are skipped.
func TestDecodeMapForm(t *testing.T) {
	digest := strings.Repeat("ab", 24) + "0102030405060708"
	payload := fixture(
		"83",
		"s:ts", "cb 4000000000000000", // 2.0
		"s:events", "93",
		"88",
		"s:type", "s:BlockStored",
		"s:block_hashes", "91 c4 20", digest,
		"s:parent_block_hash", "fb", // -5
		"s:token_ids", "92 01 cd 1234",
		"s:block_size", "02",
		"s:lora_id", "c0",
		"s:medium", "c0",
		"s:group_idx", "00",
		"82", "s:type", "s:BlockRemoved", "s:block_hashes", "91 d3 fffffffffffffffe", // int64 -2
		"81", "s:type", "s:SomethingNew",
		"s:data_parallel_rank", "01",
	)
	b, err := Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	if b.TS != 2 || len(b.Events) != 2 || b.Skipped != 1 {
		t.Fatalf("batch %+v", b)
	}
	st := b.Events[0]
	if !slices.Equal(st.Hashes, []uint64{0x0102030405060708}) || !st.HasParent || st.Parent != 1<<64-5 ||
		!slices.Equal(st.Tokens, []uint32{1, 0x1234}) {
		t.Fatalf("stored %+v", st)
	}
	if rm := b.Events[1]; rm.Kind != BlockRemoved || rm.Hashes[0] != 1<<64-2 {
		t.Fatalf("removed %+v", rm)
	}
}

// Events of another KV-cache group are not this GPU's prefix blocks.
func TestDecodeSkipsOtherGroups(t *testing.T) {
	payload := fixture("92", "00", "91",
		"83", "s:type", "s:BlockRemoved", "s:block_hashes", "91 07", "s:group_idx", "01")
	b, err := Decode(payload)
	if err != nil || len(b.Events) != 0 || b.Skipped != 1 {
		t.Fatalf("got %+v, %v", b, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for name, payload := range map[string][]byte{
		"truncated":        fixture("92", "cb 3ff8"),
		"one field":        fixture("91", "00"),
		"tokens mismatch":  fixture("92", "00", "91", "97", "s:BlockStored", "91 07", "c0", "93 01 02 03", "02", "c0", "s:GPU"),
		"nil hash":         fixture("92", "00", "91", "93", "s:BlockRemoved", "91 c0", "s:GPU"),
		"no tag":           fixture("92", "00", "91", "81", "s:block_hashes", "90"),
		"negative token":   fixture("92", "00", "91", "97", "s:BlockStored", "91 07", "c0", "92 01 ff", "02", "c0", "s:GPU"),
		"zero block size":  fixture("92", "00", "91", "97", "s:BlockStored", "90", "c0", "90", "00", "c0", "s:GPU"),
		"hash of a float":  fixture("92", "00", "91", "93", "s:BlockRemoved", "91 cb 3ff8000000000000", "s:GPU"),
		"events not array": fixture("92", "00", "00"),
	} {
		if _, err := Decode(payload); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestDecodeMessageFrames(t *testing.T) {
	payload := fixture("92", "00", "90")
	m, err := DecodeMessage(Frames("kv@a", 0x0102, payload))
	if err != nil || m.Topic != "kv@a" || m.Seq != 0x0102 {
		t.Fatalf("got %+v, %v", m, err)
	}
	for _, frames := range [][][]byte{
		{[]byte("t"), payload},
		{[]byte("t"), []byte{1, 2, 3}, payload},
		{[]byte("t"), make([]byte, 8), payload, payload},
	} {
		if _, err := DecodeMessage(frames); !errors.Is(err, ErrFrames) {
			t.Errorf("%d frames: err %v", len(frames), err)
		}
	}
}

// Encode writes the array form that Decode (and llm-d) read back.
func TestEncodeRoundTrip(t *testing.T) {
	in := Batch{TS: 12.25, Events: []Event{
		{Kind: BlockStored, Hashes: []uint64{1 << 63, 5}, Parent: 99, HasParent: true, Tokens: []uint32{1, 2, 70000, 4}, BlockSize: 2},
		{Kind: BlockRemoved, Hashes: []uint64{5}},
		{Kind: AllBlocksCleared},
	}}
	p, err := Encode(&in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.TS != in.TS || len(out.Events) != 3 {
		t.Fatalf("got %+v", out)
	}
	for i := range in.Events {
		a, b := in.Events[i], out.Events[i]
		if a.Kind != b.Kind || !slices.Equal(a.Hashes, b.Hashes) || a.Parent != b.Parent || a.HasParent != b.HasParent ||
			!slices.Equal(a.Tokens, b.Tokens) || a.BlockSize != b.BlockSize {
			t.Fatalf("event %d: %+v != %+v", i, b, a)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, ep := range []string{"tcp://127.0.0.1:5557", "tcp://[2001:db8::1]:5557", "tcp://engine-0:5557"} {
		if err := CheckEndpoint(ep); err != nil {
			t.Errorf("%s: %v", ep, err)
		}
	}
	for _, ep := range []string{"", "tcp://*:5557", "ipc:///tmp/x", "tcp://host", "http://h:1", "tcp://h:1/path", "tcp://u@h:1"} {
		if err := CheckEndpoint(ep); err == nil {
			t.Errorf("%q accepted", ep)
		}
	}
}
