package bedrock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The AWS event-stream framing (application/vnd.amazon.eventstream): each
// message is
//
//	total length (4) | headers length (4) | prelude CRC32 (4)
//	headers | payload | message CRC32 (4)
//
// big-endian, CRC32 IEEE; the prelude CRC covers the first 8 bytes and the
// message CRC everything before it. A header is name length (1), name,
// value type (1) and the value (strings and byte arrays with a 2-byte
// length). Both CRCs are checked: a corrupted or desynchronised stream is
// an error, never a misread event.

// Bounds of one message (the service's own limit is 16 MiB; headers 128 KiB).
const (
	MaxMessageBytes = 16 << 20
	maxHeadersBytes = 128 << 10
	preludeBytes    = 12
	minMessageBytes = preludeBytes + 4
)

// Errors of the framing.
var (
	ErrPreludeCRC = errors.New("eventstream: prelude CRC mismatch")
	ErrMessageCRC = errors.New("eventstream: message CRC mismatch")
	ErrFrame      = errors.New("eventstream: malformed message")
)

// Message is one decoded message. Its slices are reused by the next Read.
type Message struct {
	Headers []Header
	Payload []byte
}

// Header is one header; Value is the string form of string values (other
// types are kept as their raw bytes).
type Header struct {
	Name  string
	Type  byte
	Value []byte
}

// Get returns the value of the string header name.
func (m *Message) Get(name string) string {
	for _, h := range m.Headers {
		if h.Name == name {
			return string(h.Value)
		}
	}
	return ""
}

// Decoder reads messages from a stream.
type Decoder struct {
	r   io.Reader
	buf []byte
	msg Message
}

// NewDecoder reads from r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: r} }

// Header value types and their fixed sizes (-1: 2-byte length prefix).
var typeSizes = [10]int{0, 0, 1, 2, 4, 8, -1, -1, 8, 16}

// Read returns the next message; io.EOF at a clean end between messages,
// io.ErrUnexpectedEOF inside one.
func (d *Decoder) Read() (*Message, error) {
	if cap(d.buf) < preludeBytes {
		d.buf = make([]byte, 0, 4096)
	}
	pre := d.buf[:preludeBytes]
	if _, err := io.ReadFull(d.r, pre); err != nil {
		return nil, err
	}
	total := binary.BigEndian.Uint32(pre[0:4])
	hlen := binary.BigEndian.Uint32(pre[4:8])
	if crc32.ChecksumIEEE(pre[:8]) != binary.BigEndian.Uint32(pre[8:12]) {
		return nil, ErrPreludeCRC
	}
	if total < minMessageBytes || total > MaxMessageBytes || hlen > maxHeadersBytes || uint64(hlen)+minMessageBytes > uint64(total) {
		return nil, fmt.Errorf("%w: lengths %d/%d", ErrFrame, total, hlen)
	}
	if cap(d.buf) < int(total) {
		nb := make([]byte, total)
		copy(nb, pre)
		d.buf = nb[:0]
	}
	b := d.buf[:total]
	if _, err := io.ReadFull(d.r, b[preludeBytes:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if crc32.ChecksumIEEE(b[:total-4]) != binary.BigEndian.Uint32(b[total-4:]) {
		return nil, ErrMessageCRC
	}
	hs := b[preludeBytes : preludeBytes+hlen]
	d.msg.Headers = d.msg.Headers[:0]
	for len(hs) > 0 {
		n := int(hs[0])
		if n == 0 || len(hs) < 1+n+1 {
			return nil, ErrFrame
		}
		h := Header{Name: string(hs[1 : 1+n]), Type: hs[1+n]}
		hs = hs[2+n:]
		if int(h.Type) >= len(typeSizes) {
			return nil, ErrFrame
		}
		size := typeSizes[h.Type]
		if size < 0 {
			if len(hs) < 2 {
				return nil, ErrFrame
			}
			size = int(binary.BigEndian.Uint16(hs))
			hs = hs[2:]
		}
		if len(hs) < size {
			return nil, ErrFrame
		}
		h.Value = hs[:size]
		hs = hs[size:]
		d.msg.Headers = append(d.msg.Headers, h)
	}
	d.msg.Payload = b[preludeBytes+hlen : total-4]
	return &d.msg, nil
}
