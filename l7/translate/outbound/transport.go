package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Bounds on what is read from a client request and a provider answer.
const (
	// MaxRequestBytes bounds the chat request the transport reads (the
	// gateway's own body limit is smaller unless raised).
	MaxRequestBytes = 64 << 20
	// MaxResponseBytes bounds a whole (not streamed) provider answer.
	MaxResponseBytes = 32 << 20
	// MaxErrorBytes bounds a provider error body.
	MaxErrorBytes = 64 << 10
)

// Translator is one provider kind's half of the translation.
type Translator interface {
	// ProviderName is the kind's gen_ai.provider.name.
	ProviderName() string
	// NewRequest builds the provider request for r, credentials and
	// signature included.
	NewRequest(ctx context.Context, r *chatwire.Request) (*http.Request, error)
	// Response decodes a whole successful answer.
	Response(body []byte, r *chatwire.Request) (*chatwire.Response, error)
	// Stream reads a successful streamed answer.
	Stream(body io.Reader, r *chatwire.Request) StreamDecoder
	// Error maps a failed answer to an OpenAI error with its status.
	Error(status int, body []byte) *openai.Error
}

// StreamDecoder reads a provider stream one event at a time.
type StreamDecoder interface {
	// Next reads one provider event and calls emit for each chunk it
	// makes (the chunk may be reused after emit returns). It returns
	// io.EOF after the provider's own end of stream, any other error for
	// a stream that broke or ended without its end.
	Next(emit func(*chatwire.Chunk)) error
}

// Transport translates chat-completions requests for one provider.
type Transport struct {
	T    Translator
	Base http.RoundTripper
	// Now is the clock for "created" (time.Now when nil).
	Now func() time.Time
}

// requestIDHeaders are where providers put their own request id.
var requestIDHeaders = []string{"X-Request-Id", "Request-Id", "X-Amzn-Requestid", "X-Goog-Request-Id", "Apim-Request-Id"}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(in *http.Request) (*http.Response, error) {
	if in.Body != nil {
		defer in.Body.Close()
	}
	if !strings.HasSuffix(in.URL.Path, "/chat/completions") {
		return errorResponse(in, &openai.Error{Status: http.StatusNotFound, Type: openai.TypeInvalidRequest, Code: "unsupported_endpoint",
			Message: "this model's provider (" + t.T.ProviderName() + ") serves chat completions only, not " + endpointName(in.URL.Path)}), nil
	}
	var body []byte
	if in.Body != nil {
		b, err := io.ReadAll(io.LimitReader(in.Body, MaxRequestBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read chat request: %w", err)
		}
		if len(b) > MaxRequestBytes {
			return errorResponse(in, openai.BadRequest("request_too_large", "the request is too large to translate", "")), nil
		}
		body = b
	}
	var r chatwire.Request
	if err := json.Unmarshal(body, &r); err != nil {
		return errorResponse(in, openai.BadRequest("invalid_request", "the request could not be translated: "+err.Error(), "")), nil
	}
	pr, err := t.T.NewRequest(in.Context(), &r)
	if err != nil {
		if e, ok := err.(*openai.Error); ok {
			return errorResponse(in, e), nil
		}
		return nil, err
	}
	for _, h := range [...]string{"Traceparent", "Tracestate", "X-Request-Id", "Infergate-Hops"} {
		if v := in.Header.Get(h); v != "" && pr.Header.Get(h) == "" {
			pr.Header.Set(h, v)
		}
	}
	resp, err := t.Base.RoundTrip(pr)
	if err != nil {
		return nil, err
	}
	out := &http.Response{Status: resp.Status, StatusCode: resp.StatusCode, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Request: in, ContentLength: -1}
	for _, h := range requestIDHeaders {
		if v := resp.Header.Get(h); v != "" {
			out.Header.Set("X-Request-Id", v)
			break
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		out.Header.Set("Retry-After", ra)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBytes))
		resp.Body.Close()
		e := t.T.Error(resp.StatusCode, b)
		return withBody(out, e.Status, "application/json", e.Marshal()), nil
	}
	if r.Stream {
		out.Header.Set("Content-Type", "text/event-stream")
		out.Body = &streamBody{dec: t.T.Stream(resp.Body, &r), src: resp.Body, usage: r.WantsUsage(), model: r.Model, created: t.now().Unix(),
			meter: meterFrom(in.Context())}
		return out, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read provider answer: %w", err)
	}
	if len(b) > MaxResponseBytes {
		return nil, fmt.Errorf("provider answer larger than %d bytes", MaxResponseBytes)
	}
	cr, err := t.T.Response(b, &r)
	if err != nil {
		// A 200 the gateway cannot read is the provider's failure.
		return withBody(out, http.StatusBadGateway, "application/json", (&openai.Error{Status: http.StatusBadGateway, Type: openai.TypeUpstream,
			Code: "upstream_error", Message: "the provider's answer could not be translated"}).Marshal()), nil
	}
	meterFrom(in.Context()).record(cr.Usage)
	if cr.Object == "" {
		cr.Object = chatwire.ObjectCompletion
	}
	if cr.Created == 0 {
		cr.Created = t.now().Unix()
	}
	if cr.Model == "" {
		cr.Model = r.Model
	}
	jb, err := json.Marshal(cr)
	if err != nil {
		return nil, fmt.Errorf("encode chat response: %w", err)
	}
	return withBody(out, http.StatusOK, "application/json", jb), nil
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func withBody(r *http.Response, status int, ct string, b []byte) *http.Response {
	r.StatusCode = status
	r.Status = strconv.Itoa(status) + " " + http.StatusText(status)
	r.Header.Set("Content-Type", ct)
	r.ContentLength = int64(len(b))
	r.Body = io.NopCloser(bytes.NewReader(b))
	return r
}

func errorResponse(in *http.Request, e *openai.Error) *http.Response {
	r := &http.Response{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Request: in}
	return withBody(r, e.Status, "application/json", e.Marshal())
}

// streamBody is the chat-completions event stream of a provider stream,
// made as it is read.
type streamBody struct {
	dec     StreamDecoder
	src     io.Closer
	buf     []byte
	off     int
	err     error
	usage   bool
	model   string
	id      string
	created int64
	meter   *Meter
}

var doneEvent = []byte("data: [DONE]\n\n")

func (s *streamBody) Read(p []byte) (int, error) {
	for s.off == len(s.buf) {
		if s.err != nil {
			return 0, s.err
		}
		s.buf, s.off = s.buf[:0], 0
		if err := s.dec.Next(s.emit); err == io.EOF {
			s.buf = append(s.buf, doneEvent...)
			s.err = io.EOF
		} else if err != nil {
			s.err = err
		}
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

func (s *streamBody) emit(c *chatwire.Chunk) {
	s.meter.record(c.Usage)
	if c.Usage != nil && len(c.Choices) == 0 && !s.usage {
		return
	}
	if c.ID == "" {
		c.ID = s.id
	} else if s.id == "" {
		s.id = c.ID
	}
	if c.Model == "" {
		c.Model = s.model
	}
	c.Object, c.Created = chatwire.ObjectChunk, s.created
	if c.Choices == nil {
		c.Choices = []chatwire.ChunkChoice{}
	}
	s.buf = append(s.buf, "data: "...)
	s.buf = appendChunk(s.buf, c)
	s.buf = append(s.buf, "\n\n"...)
}

func (s *streamBody) Close() error { return s.src.Close() }

// endpointName names the OpenAI endpoint of path (the provider's base
// path joined with the client's endpoint) for an error message.
func endpointName(path string) string {
	for _, ep := range []string{"/completions", "/embeddings", "/moderations", "/responses", "/models"} {
		if strings.HasSuffix(path, ep) {
			return "/v1" + ep
		}
	}
	return "this endpoint"
}
