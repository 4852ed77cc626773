// Package rawsock reads and writes TCP sockets with raw system calls.
//
// Go's sockets are non-blocking: a read or write either moves bytes at
// once or fails with EAGAIN, and then the goroutine waits in the network
// poller. Yet net.Conn still makes each call through the scheduler's
// blocking-syscall path (entersyscall), and on a gateway that goes idle and
// busy thousands of times a second that path is not free: the first such
// call after every idle spell wakes the runtime's monitor thread (sysmon),
// which then polls every 20 us for a millisecond before it backs off again.
// Measured on the gateway at 4 KB prompts, sysmon's wake-ups were about 7%
// of its CPU (BENCHMARKS.md). A Conn here makes the same read and write
// calls without telling the scheduler, since they cannot block, and waits
// for readiness through the same poller, so deadlines, Close and the
// addresses behave as on the net.Conn it wraps.
package rawsock

import (
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The call in progress and its result. net.Conn allows one Read and
	// one Write at a time each (the poller's read and write locks, taken
	// by RawConn, serialise them), so one slot each is enough; the
	// callbacks are made once so that a call does not allocate.
	rbuf    []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// Wrap returns c as a *Conn when it is a TCP connection with a file
// descriptor, and c unchanged otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rs := &Conn{TCPConn: tc, rc: rc}
	rs.readFn = rs.readStep
	rs.writeFn = rs.writeStep
	return rs
}

// Read reads up to len(p) bytes, waiting in the poller while the socket
// has none; io.EOF once the peer has closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rbuf, c.rerr = nil, nil
	if err != nil {
		return n, err // deadline passed or closed: a *net.OpError
	}
	return n, rerr
}

func (c *Conn) readStep(fd uintptr) bool {
	n, err := ReadFD(fd, c.rbuf)
	switch {
	case err == syscall.EAGAIN:
		return false
	case err == io.EOF:
		c.rerr = err
	case err != nil:
		c.rerr = c.opError("read", err.(syscall.Errno))
	default:
		c.rn = n
	}
	return true
}

// ReadFD makes one read of the non-blocking socket fd into p (len(p) > 0),
// for a caller inside a syscall.RawConn callback: n bytes, io.EOF once the
// peer has closed its side, syscall.EAGAIN when nothing is there yet, or
// the read's syscall.Errno.
func ReadFD(fd uintptr, p []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return 0, e
		case n == 0:
			return 0, io.EOF
		}
		return int(n), nil
	}
}

// WriteOr writes p to the socket fd with raw calls, for a caller inside a
// syscall.RawConn callback of c (so without the poller's write lock and
// readiness reset), and hands what the socket does not take at once to
// c.Write, which waits in the poller and keeps to c's write deadline.
func WriteOr(fd uintptr, p []byte, c net.Conn) (int, error) {
	n, err := WriteFD(fd, p)
	if err == syscall.EAGAIN {
		m, err := c.Write(p[n:])
		return n + m, err
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", err)}
	}
	return n, nil
}

// Raw returns the connection's syscall.RawConn.
func (c *Conn) Raw() syscall.RawConn { return c.rc }

// Write writes all of p, waiting in the poller while the socket's send
// buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wbuf, c.werr = nil, nil
	if err != nil {
		return n, err
	}
	return n, werr
}

func (c *Conn) writeStep(fd uintptr) bool {
	n, err := WriteFD(fd, c.wbuf[c.wn:])
	c.wn += n
	switch {
	case err == syscall.EAGAIN:
		return false
	case err != nil:
		c.werr = c.opError("write", err.(syscall.Errno))
	}
	return true
}

// WriteChunk bounds the bytes one raw write system call is given. A raw
// call does not tell the scheduler it is in the kernel, so while it runs
// its thread keeps its P and nothing can preempt it: a multi-megabyte write
// into a large send buffer would hold the P for the whole copy. In chunks
// of this size, with a yield between them, every other goroutine (and the
// poller) gets its turn; a response of a few KiB, the usual case, is still
// one call.
const WriteChunk = 64 << 10

// WriteFD writes p to the non-blocking socket fd for a caller inside a
// syscall.RawConn callback, or one that otherwise knows no other goroutine
// writes to it: all of it (n == len(p), nil), or the n bytes the socket
// took before it was full (syscall.EAGAIN) or the write failed (its
// syscall.Errno). It gives the kernel at most WriteChunk bytes per call
// and yields the processor between calls.
func WriteFD(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if n > 0 {
			runtime.Gosched()
		}
		rest := p[n:]
		if len(rest) > WriteChunk {
			rest = rest[:WriteChunk]
		}
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			n += int(m)
		case syscall.EINTR:
		default:
			return n, e
		}
	}
	return n, nil
}

// Readable reports whether the socket fd can be read now, without reading
// or waiting: true when bytes are there, the peer has closed its side or
// the socket has failed. It checks an idle pooled connection before reuse,
// from inside a syscall.RawConn callback.
func Readable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			return e != syscall.EAGAIN && e != syscall.EWOULDBLOCK
		}
	}
}

func (c *Conn) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}
