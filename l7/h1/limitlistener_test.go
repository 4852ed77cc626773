package h1

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestLimitListener: past the per-address cap a connection is reset at
// once, and closing an admitted one frees its slot.
func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(ln, 0, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	s1, s2 := <-accepted, <-accepted
	// The reset may reach the third client during its connect or after.
	if over, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := over.Read(make([]byte, 1)); err == nil || err == io.EOF && l.Refused() == 0 {
			t.Fatalf("a third connection from one address was not refused: %v (refused %d)", err, l.Refused())
		}
		_ = over.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); l.Refused() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("refused %d, want 1", l.Refused())
		}
	}
	_ = s1.Close()
	c := dial()
	select {
	case s3 := <-accepted:
		_ = s3.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a freed slot was not given to the next connection")
	}
	for _, x := range []net.Conn{a, b, c, s2} {
		_ = x.Close()
	}
}
