package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/infergate/infergate/policy"
)

// Client bounds.
const (
	// DefaultTimeout bounds one request; an apply reconciles the kernel and
	// the gateway, so it is generous.
	DefaultTimeout = 60 * time.Second
	// MaxResponseBytes bounds a response body (a policy is at most 4 MiB).
	MaxResponseBytes = 32 << 20
	// maxErrorBytes bounds an error body read for its message.
	maxErrorBytes = 1 << 20
)

// ErrUnavailable matches (errors.Is) every failure to reach the agent.
var ErrUnavailable = errors.New("agent unavailable")

// UnavailableError says why the agent's socket could not be used.
type UnavailableError struct {
	Socket string
	// Reason is a sentence for operators, with what to do about it.
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string        { return e.Reason }
func (e *UnavailableError) Unwrap() error        { return e.Err }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Error is the agent refusing a request (4xx/5xx).
type Error struct {
	Status   int
	Message  string
	Problems []policy.Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	// Agents may spell the problems out in the message too; keep only its
	// lead ("desired state refused") and list them once.
	msg := e.Message
	if i := strings.Index(msg, e.Problems[0].Path); e.Problems[0].Path != "" && i > 0 {
		msg = strings.TrimRight(msg[:i], ": ;")
	}
	var b strings.Builder
	b.WriteString(msg)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// IsNotFound reports whether err is the agent answering 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Client talks to the agent over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the agent listening on socketPath.
func NewClient(socketPath string) *Client {
	if socketPath == "" {
		socketPath = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socketPath, http: &http.Client{Transport: tr, Timeout: DefaultTimeout}}
}

// Socket is the path the client dials.
func (c *Client) Socket() string { return c.socket }

func (c *Client) unavailable(err error) error { return ClassifyDialError(c.socket, err) }

// ClassifyDialError explains a failure to connect to socket in terms an
// operator can act on, as an *UnavailableError.
func ClassifyDialError(socket string, err error) error {
	c := struct{ socket string }{socket}
	reason := fmt.Sprintf("cannot reach the agent at %s: %v", c.socket, err)
	switch {
	case errors.Is(err, syscall.ENOENT):
		reason = fmt.Sprintf("agent not running: no socket at %s (start it with: infergate agent, or point --socket at it)", c.socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = fmt.Sprintf("agent not running: nothing is listening on %s (a stale socket; start it with: infergate agent)", c.socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		reason = fmt.Sprintf("permission denied on %s: the agent's socket is root-only (run with sudo)", c.socket)
	case errors.Is(err, syscall.ENOTSOCK):
		reason = fmt.Sprintf("%s is not a socket (check --socket)", c.socket)
	}
	return &UnavailableError{Socket: c.socket, Reason: reason, Err: err}
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, out any) error {
	u := "http://agent" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return c.unavailable(opErr.Err)
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		var er ErrorResponse
		if json.Unmarshal(b, &er) != nil || er.Error == "" {
			er.Error = strings.TrimSpace(string(b))
			if er.Error == "" {
				er.Error = resp.Status
			}
		}
		return &Error{Status: resp.StatusCode, Message: er.Error, Problems: er.Problems}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBytes))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decoding %s %s response: %w", method, path, err)
	}
	return nil
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, nil, "", out)
}

// Status reports the agent's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.getJSON(ctx, PathStatus, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Backends lists every pool backend with its weights, health and load.
func (c *Client) Backends(ctx context.Context) ([]Backend, error) {
	var b []Backend
	return b, c.getJSON(ctx, PathBackends, &b)
}

// Stats reports data-plane counters.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var s Stats
	if err := c.getJSON(ctx, PathStats, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// GetPolicy returns the applied policy; IsNotFound(err) when there is none.
func (c *Client) GetPolicy(ctx context.Context) (*PolicyVersion, error) {
	var p PolicyVersion
	if err := c.getJSON(ctx, PathPolicy, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ApplyPolicy sends a YAML document; with dryRun the agent validates and
// compiles it but applies nothing.
func (c *Client) ApplyPolicy(ctx context.Context, doc []byte, dryRun bool) (*ApplyResult, error) {
	var q url.Values
	if dryRun {
		q = url.Values{"dryRun": {"true"}}
	}
	var r ApplyResult
	if err := c.do(ctx, http.MethodPost, PathPolicy, q, bytes.NewReader(doc), "application/yaml", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeletePolicy removes the applied policy.
func (c *Client) DeletePolicy(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, PathPolicy, nil, nil, "", nil)
}

// History lists applied versions, newest first.
func (c *Client) History(ctx context.Context) ([]PolicyVersion, error) {
	var h []PolicyVersion
	return h, c.getJSON(ctx, PathHistory, &h)
}

// Rollback re-applies a version from history (or RollbackPrevious).
func (c *Client) Rollback(ctx context.Context, to string) (*ApplyResult, error) {
	var r ApplyResult
	if err := c.do(ctx, http.MethodPost, PathRollback, url.Values{"to": {to}}, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// CreateKey makes a key for a tenant; the key is in the answer only.
func (c *Client) CreateKey(ctx context.Context, name, tenant string) (*CreatedKey, error) {
	body, err := json.Marshal(KeyRequest{Name: name, Tenant: tenant})
	if err != nil {
		return nil, fmt.Errorf("encoding key request: %w", err)
	}
	var k CreatedKey
	if err := c.do(ctx, http.MethodPost, PathKeys, nil, bytes.NewReader(body), "application/json", &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// ListKeys lists keys by name, tenant and hash prefix.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var k []Key
	return k, c.getJSON(ctx, PathKeys, &k)
}

// RevokeKey removes a key by name.
func (c *Client) RevokeKey(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, PathKeys+"/"+url.PathEscape(name), nil, nil, "", nil)
}
