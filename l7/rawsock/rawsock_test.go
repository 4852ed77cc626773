package rawsock

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped client end and the plain server end of a loopback
// TCP connection.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	if srv == nil {
		t.FailNow()
	}
	w, ok := Wrap(c).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap", c)
	}
	t.Cleanup(func() { w.Close(); srv.Close() })
	return w, srv
}

// TestBulkBothWays moves more than the socket buffers hold in both
// directions at once, so that writes and reads hit EAGAIN and wait in the
// poller, and checks every byte.
func TestBulkBothWays(t *testing.T) {
	c, srv := pair(t)
	// A lost byte must fail the test, not hang it.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	srv.SetDeadline(time.Now().Add(20 * time.Second))
	up := make([]byte, 8<<20)
	down := make([]byte, 8<<20)
	rand.Read(up)
	rand.Read(down)
	errc := make(chan error, 3)
	var gotUp, gotDown []byte
	go func() { _, err := c.Write(up); errc <- err }()
	go func() { _, err := srv.Write(down); errc <- err }()
	go func() {
		var err error
		gotUp, err = io.ReadAll(io.LimitReader(srv, int64(len(up))))
		errc <- err
	}()
	// The wrapped end reads in small pieces, as bufio would.
	buf := make([]byte, 3000)
	for len(gotDown) < len(down) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(gotDown), err)
		}
		gotDown = append(gotDown, buf[:n]...)
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
		t.Fatal("bytes differ after the round trip")
	}
}

func TestEOFAndReadable(t *testing.T) {
	c, srv := pair(t)
	fd := rawFD(t, c)
	if Readable(fd) {
		t.Fatal("idle connection readable")
	}
	srv.Write([]byte("x"))
	waitReadable(t, fd)
	buf := make([]byte, 4)
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if Readable(fd) {
		t.Fatal("readable after the byte was read")
	}
	srv.Close()
	waitReadable(t, fd)
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after peer close = %d, %v; want 0, EOF", n, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v; want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 8)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed conn = %v; want net.ErrClosed", err)
	}
}

// TestWriteToReset checks that a failing system call comes back as a
// *net.OpError carrying the errno, as net.Conn reports it.
func TestWriteToReset(t *testing.T) {
	c, srv := pair(t)
	srv.(*net.TCPConn).SetLinger(0)
	srv.Close() // RST
	var err error
	for range 100 {
		if _, err = c.Write(make([]byte, 1<<16)); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("Write to a reset peer = %#v; want an OpError with ECONNRESET or EPIPE", err)
	}
}

func TestWrapLeavesOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe) = %T; want it unchanged", got)
	}
}

func TestNoAllocations(t *testing.T) {
	c, srv := pair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(srv, buf[:4]); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip; want 0", allocs)
	}
}

func rawFD(t *testing.T, c *Conn) uintptr {
	var fd uintptr
	if err := c.rc.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func waitReadable(t *testing.T, fd uintptr) {
	t.Helper()
	for range 500 {
		if Readable(fd) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("never became readable")
}

// TestWriteFDChunked writes more than WriteChunk to a SOCK_SEQPACKET
// socket, which keeps each write system call as one message, and checks
// that no call was given more than WriteChunk bytes and that every byte
// arrived in order.
func TestWriteFDChunked(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	// Room for a message of the whole write, so that one unchunked call
	// would succeed (and be seen as one message).
	const size = 3*WriteChunk + 1000
	if err := syscall.SetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4<<20); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	rand.Read(want)
	type result struct {
		sizes []int
		got   []byte
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		buf := make([]byte, 2*size)
		deadline := time.Now().Add(testTimeout)
		for len(r.got) < size && time.Now().Before(deadline) {
			n, _, err := syscall.Recvfrom(fds[1], buf, 0)
			if err == syscall.EAGAIN {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				r.err = err
				break
			}
			r.sizes = append(r.sizes, n)
			r.got = append(r.got, buf[:n]...)
		}
		done <- r
	}()
	off := 0
	deadline := time.Now().Add(testTimeout)
	for off < size && time.Now().Before(deadline) {
		n, err := WriteFD(uintptr(fds[0]), want[off:])
		off += n
		if err == syscall.EAGAIN {
			time.Sleep(time.Millisecond) // the reader's queue is full
			continue
		}
		if err != nil {
			t.Fatalf("WriteFD after %d bytes: %v", off, err)
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, n := range r.sizes {
		if n > WriteChunk {
			t.Fatalf("a write call of %d bytes (messages %v); want at most WriteChunk (%d)", n, r.sizes, WriteChunk)
		}
	}
	if !bytes.Equal(r.got, want) {
		t.Fatalf("got %d bytes, differing from the %d written", len(r.got), size)
	}
}

const testTimeout = 10 * time.Second
