package netns

import (
	"io"
	"net"
	osexec "os/exec"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/privtest"
)

// TestTopology proves the harness itself: two namespaces joined through a
// bridge namespace exchange real TCP, and Close removes everything.
func TestTopology(t *testing.T) {
	privtest.Root(t)
	privtest.Tools(t, "ip")
	topo := New("igt")
	t.Cleanup(func() { _ = topo.Close() })

	a, err := topo.AddNS("a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := topo.AddNS("b")
	sw, _ := topo.AddNS("sw")
	must(t, topo.Veth(a, "eth0", sw, "pa"))
	must(t, topo.Veth(b, "eth0", sw, "pb"))
	must(t, topo.Bridge(sw, "br0", "pa", "pb"))
	must(t, topo.Exec(a, "ip", "addr", "add", "198.18.0.1/24", "dev", "eth0"))
	must(t, topo.Exec(b, "ip", "addr", "add", "198.18.0.2/24", "dev", "eth0"))

	var ln net.Listener
	must(t, Do(b, func() (err error) {
		ln, err = net.Listen("tcp", "198.18.0.2:7000")
		return err
	}))
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("hello from b"))
			c.Close()
		}
	}()
	var got []byte
	must(t, Do(a, func() error {
		c, err := net.Dial("tcp", "198.18.0.2:7000")
		if err != nil {
			return err
		}
		defer c.Close()
		got, err = io.ReadAll(c)
		return err
	}))
	if string(got) != "hello from b" {
		t.Fatalf("got %q", got)
	}
	must(t, topo.Close())
	out, err := osexec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), topo.Prefix) {
		t.Fatalf("namespaces left behind: %s", out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAttachPass(t *testing.T) {
	privtest.Root(t)
	topo := New("igp")
	t.Cleanup(func() { _ = topo.Close() })
	a, err := topo.AddNS("a")
	must(t, err)
	b, _ := topo.AddNS("b")
	must(t, topo.Veth(a, "eth0", b, "eth0"))
	must(t, topo.AttachPass(b, "eth0"))
	out, err := topo.Output(b, "ip", "-d", "link", "show", "eth0")
	must(t, err)
	if !strings.Contains(out, "xdp") {
		t.Fatalf("no xdp program on eth0: %s", out)
	}
}
