package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"time"
)

var (
	errBadChunk   = errors.New("h1: malformed chunked encoding")
	errBodyCut    = errors.New("h1: request body ended early")
	errBigTrailer = errors.New("h1: chunked trailer too large")
)

// body is a request body (Content-Length or chunked), reused per request.
// Reaching its end arms the disconnect watch.
type body struct {
	c         *conn
	remaining int64 // Content-Length bytes left
	chunked   bool
	chunkLeft int64 // bytes left in the current chunk
	inChunk   bool  // chunkLeft belongs to a chunk whose CRLF is unread
	expect    bool  // 100 Continue not yet sent
	done      bool
	closed    bool
	err       error
}

func (b *body) reset(length int64, chunked, expect bool) {
	*b = body{c: b.c, remaining: length, chunked: chunked, expect: expect, done: length == 0 && !chunked}
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

// Buffered reports whether the rest of the body is already read from the
// socket, so that reading it cannot wait for the client: a handler then
// needs no read deadline for it. Most request bodies arrive with the head.
func (b *body) Buffered() bool {
	if b.done {
		return true
	}
	return !b.chunked && !b.expect && b.err == nil && b.remaining <= int64(b.c.br.Buffered())
}

// Close stops the handler's reads; the server discards or closes later.
func (b *body) Close() error {
	b.closed = true
	return nil
}

func (b *body) read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.expect {
		b.expect = false
		if !b.c.w.headSent {
			bw := b.c.bw
			_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := bw.Flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readLength(p)
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *body) readLength(p []byte) (int, error) {
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.c.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		b.finished()
		return n, io.EOF
	}
	if err == io.EOF {
		err = errBodyCut
	}
	return n, err
}

// finished marks the end of the body; while the handler runs, the
// connection may now be watched for the client leaving.
func (b *body) finished() {
	b.done = true
	b.c.releaseBody()
	if b.c.handling {
		b.c.armWatch()
	}
}

func (b *body) readChunked(p []byte) (int, error) {
	br := b.c.br
	if !b.inChunk {
		size, err := b.readChunkSize()
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := b.readTrailer(); err != nil {
				return 0, err
			}
			b.finished()
			return 0, io.EOF
		}
		b.chunkLeft, b.inChunk = size, true
	}
	if int64(len(p)) > b.chunkLeft {
		p = p[:b.chunkLeft]
	}
	n, err := br.Read(p)
	b.chunkLeft -= int64(n)
	if n > 0 && !b.c.reserveBody(int64(n)) {
		b.c.srv.bodyRefused.Add(1)
		return n, ErrBodyBudget
	}
	if err == io.EOF {
		return n, errBodyCut
	}
	if err != nil {
		return n, err
	}
	if b.chunkLeft == 0 {
		end, err := br.Peek(2)
		if err != nil {
			if err == io.EOF {
				err = errBodyCut
			}
			return n, err
		}
		if end[0] != '\r' || end[1] != '\n' {
			return n, errBadChunk
		}
		_, _ = br.Discard(2)
		b.inChunk = false
	}
	return n, nil
}

// readChunkSize reads "<hex>[;ext]\r\n". The line must fit the read
// buffer; extensions are ignored but may hold no control characters.
func (b *body) readChunkSize() (int64, error) {
	line, err := b.c.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			return 0, errBodyCut
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, errBadChunk
		}
		return 0, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, errBadChunk
	}
	line = line[:len(line)-2]
	size, i, ok := ParseChunkSize(line)
	if !ok {
		return 0, errBadChunk
	}
	if i < len(line) {
		if line[i] != ';' {
			return 0, errBadChunk
		}
		for _, c := range line[i:] {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return 0, errBadChunk
			}
		}
	}
	return size, nil
}

// readTrailer reads and drops the trailer fields after the last chunk, up
// to the empty line, bounded like a head.
func (b *body) readTrailer() error {
	br := b.c.br
	total := 0
	limit := b.c.srv.maxHeaderBytes()
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if total > limit || errors.Is(err, bufio.ErrBufferFull) {
			return errBigTrailer
		}
		if err != nil {
			if err == io.EOF {
				return errBodyCut
			}
			return err
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errBadChunk
		}
		if len(line) == 2 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errBadChunk
		}
	}
}

// canDiscard reports whether the unread rest of the body may be read and
// dropped to keep the connection.
func (b *body) canDiscard() bool {
	if b.done {
		return true
	}
	return b.err == nil && !b.expect && !b.chunked && b.remaining <= maxPostHandlerDiscard
}

// discard reads the rest of the body the handler left, when that is cheap
// enough, so the connection can be reused.
func (b *body) discard() bool {
	if !b.canDiscard() {
		return false
	}
	_ = b.c.setReadDeadline(time.Now().Add(b.c.srv.headerTimeout()))
	var scratch [512]byte
	for !b.done {
		if _, err := b.read(scratch[:]); err != nil && err != io.EOF {
			return false
		}
	}
	return true
}
