package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/infergate/infergate/test/netns"
)

// Client bounds.
const (
	// dialWorkers is how many OS threads per namespace open sockets.
	dialWorkers = 8
	// DialTimeout bounds one TCP connect.
	DialTimeout = 3 * time.Second
	// healthTimeout bounds a readiness probe.
	healthTimeout = time.Second
	// maxBody bounds what a helper reads of a response.
	maxBody = 1 << 20
)

// Dialer opens sockets inside a network namespace from any goroutine: a few
// OS threads stay switched into the namespace and create the sockets there
// (a socket belongs to the namespace it was created in for its whole life).
type Dialer struct {
	NS    string
	reqs  chan dialReq
	done  chan struct{}
	Local netip.Addr // source address; zero lets the kernel choose
}

type dialReq struct {
	ctx     context.Context
	network string
	addr    string
	reply   chan dialRes
}

type dialRes struct {
	c   net.Conn
	err error
}

// NewDialer starts the namespace's dialing threads; Close stops them.
func NewDialer(ns string) (*Dialer, error) {
	d := &Dialer{NS: ns, reqs: make(chan dialReq), done: make(chan struct{})}
	ready := make(chan error, dialWorkers)
	for i := 0; i < dialWorkers; i++ {
		go d.worker(ready)
	}
	for i := 0; i < dialWorkers; i++ {
		if err := <-ready; err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// WithLocal returns a dialer sharing d's threads that binds to src.
func (d *Dialer) WithLocal(src netip.Addr) *Dialer {
	return &Dialer{NS: d.NS, reqs: d.reqs, done: d.done, Local: src}
}

func (d *Dialer) worker(ready chan<- error) {
	// Locked and never unlocked: the thread dies with the goroutine, so
	// no other goroutine ever runs in this namespace by accident.
	runtime.LockOSThread()
	h, err := vnetns.GetFromName(d.NS)
	if err != nil {
		ready <- fmt.Errorf("open netns %s: %w", d.NS, err)
		return
	}
	err = vnetns.Set(h)
	h.Close()
	if err != nil {
		ready <- fmt.Errorf("enter netns %s: %w", d.NS, err)
		return
	}
	ready <- nil
	for {
		select {
		case <-d.done:
			return
		case r := <-d.reqs:
			nd := net.Dialer{Timeout: DialTimeout}
			if local, ok := r.ctx.Value(localKey{}).(netip.Addr); ok && local.IsValid() {
				nd.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
				if r.network == "udp" {
					nd.LocalAddr = &net.UDPAddr{IP: local.AsSlice()}
				}
			}
			c, err := nd.DialContext(r.ctx, r.network, r.addr)
			r.reply <- dialRes{c, err}
		}
	}
}

type localKey struct{}

// DialContext dials from the namespace.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.Local.IsValid() {
		ctx = context.WithValue(ctx, localKey{}, d.Local)
	}
	r := dialReq{ctx: ctx, network: network, addr: addr, reply: make(chan dialRes, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.done:
		return nil, net.ErrClosed
	}
	res := <-r.reply
	return res.c, res.err
}

// Close stops the dialing threads (open connections stay usable).
func (d *Dialer) Close() {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
}

// HTTPClient returns a client whose connections start in the namespace.
// keepAlive false opens one TCP connection per request, so every request is
// a new flow for the balancer.
func (d *Dialer) HTTPClient(keepAlive bool, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:         d.DialContext,
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Answer is what a backend said about a request.
type Answer struct {
	Status    int
	Backend   string
	LocalAddr string
	Remote    string
	Body      string
}

// URL is the service URL of a VIP.
func URL(vip netip.Addr, path string) string {
	return "http://" + netip.AddrPortFrom(vip, ServicePort).String() + path
}

// ChatBody is a small non-streaming chat request.
const ChatBody = `{"model":"mock-model","messages":[{"role":"user","content":"hello"}],"max_tokens":4}`

// Chat posts ChatBody to the VIP and reads the whole answer.
func Chat(ctx context.Context, c *http.Client, vip netip.Addr) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, URL(vip, "/v1/chat/completions"), strings.NewReader(ChatBody))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	a := Answer{Status: resp.StatusCode, Backend: resp.Header.Get(BackendHeader),
		LocalAddr: resp.Header.Get(LocalAddrHeader), Remote: resp.Header.Get(RemoteAddrHeader), Body: string(b)}
	if err != nil {
		return a, fmt.Errorf("read answer from %s: %w", a.Backend, err)
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("status %d from %s: %s", resp.StatusCode, a.Backend, b)
	}
	return a, nil
}

// healthIn asks addr for /health from inside namespace ns. The request is
// written by hand on a socket opened in ns: an http.Transport would dial
// from another goroutine, outside the namespace.
func healthIn(ns string, addr netip.AddrPort) error {
	return netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", addr.String(), healthTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(healthTimeout))
		if _, err := fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/health: status %d", addr, resp.StatusCode)
		}
		return nil
	})
}

// Tally counts answers per backend and the failures of a batch of requests.
type Tally struct {
	mu        sync.Mutex
	ByBackend map[string]int
	OK        int
	Failed    int
	FirstErr  error
}

func (t *Tally) add(a Answer, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ByBackend == nil {
		t.ByBackend = map[string]int{}
	}
	if err != nil {
		t.Failed++
		if t.FirstErr == nil {
			t.FirstErr = err
		}
		return
	}
	t.OK++
	t.ByBackend[a.Backend]++
}

// maxConcurrency bounds Requests' parallelism.
const maxConcurrency = 64

// Requests sends n small chat requests over c to the VIPs in turn, at most
// conc at a time.
func Requests(ctx context.Context, c *http.Client, vips []netip.Addr, n, conc int) *Tally {
	conc = max(1, min(conc, maxConcurrency))
	t := &Tally{ByBackend: map[string]int{}}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				a, err := Chat(ctx, c, vips[i%len(vips)])
				t.add(a, err)
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return t
}

// Stream posts a streaming chat request for maxTokens tokens and reads the
// event stream to its end. It fails unless the stream ends with [DONE]: a
// connection cut mid-stream is a failed request. ttft is the time to the
// first event.
func Stream(ctx context.Context, c *http.Client, vip netip.Addr, maxTokens int) (a Answer, ttft time.Duration, err error) {
	return StreamURL(ctx, c, URL(vip, "/v1/chat/completions"), "", maxTokens)
}

// StreamURL is Stream to any URL, with an API key when key is not empty.
func StreamURL(ctx context.Context, c *http.Client, url, key string, maxTokens int) (a Answer, ttft time.Duration, err error) {
	body := fmt.Sprintf(`{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"hello"}],"max_tokens":%d}`, maxTokens)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return a, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return a, 0, err
	}
	defer resp.Body.Close()
	a = Answer{Status: resp.StatusCode, Backend: resp.Header.Get(BackendHeader),
		LocalAddr: resp.Header.Get(LocalAddrHeader), Remote: resp.Header.Get(RemoteAddrHeader)}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return a, 0, fmt.Errorf("status %d from %s: %s", resp.StatusCode, a.Backend, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxBody)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		if ttft == 0 {
			ttft = time.Since(start)
		}
		if line == "data: [DONE]" {
			return a, ttft, nil
		}
	}
	if err := sc.Err(); err != nil {
		return a, ttft, fmt.Errorf("stream from %s broke: %w", a.Backend, err)
	}
	return a, ttft, fmt.Errorf("stream from %s ended without [DONE]", a.Backend)
}
