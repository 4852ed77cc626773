package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/infergate/infergate/l7/openai"
)

// parseStage reads the body, bounded in size and time, and decodes the
// fields the gateway acts on. A gzip body is decompressed, bounded by the
// same limit; other content codings (zstd, br, deflate) are refused 415,
// as decoding them would take a dependency for little use.
//
// Reads: x.r. Writes: x.body, x.req.
type parseStage struct {
	maxBody     int64
	readTimeout time.Duration
}

func newParseStage(g *Gateway, cfg *config) (stage, error) {
	return &parseStage{maxBody: cfg.maxBody, readTimeout: g.opts.BodyReadTimeout}, nil
}

// bufferedBody is a request body that can tell it is already in memory.
type bufferedBody interface{ Buffered() bool }

func (s *parseStage) serve(x *exchange) *openai.Error {
	// Slow-client protection: the whole body must arrive in time. A body
	// that came with the head (l7/h1 says so) needs no deadline, which
	// spares two timer updates on most requests.
	var rc *http.ResponseController
	if bb, ok := x.r.Body.(bufferedBody); !ok || !bb.Buffered() {
		rc = http.NewResponseController(x.w)
		_ = rc.SetReadDeadline(time.Now().Add(s.readTimeout))
	}
	gzipped := false
	if ce := x.r.Header["Content-Encoding"]; len(ce) > 0 {
		switch {
		case len(ce) == 1 && (ce[0] == "" || strings.EqualFold(ce[0], "identity")):
		case len(ce) == 1 && (strings.EqualFold(ce[0], "gzip") || strings.EqualFold(ce[0], "x-gzip")):
			gzipped = true
		default:
			x.w.Header().Set("Connection", "close")
			return &openai.Error{Status: http.StatusUnsupportedMediaType, Type: openai.TypeInvalidRequest, Code: "unsupported_content_encoding",
				Message: "request bodies may be sent as they are or gzip-compressed; this Content-Encoding is not supported"}
		}
	}
	if x.r.ContentLength > s.maxBody {
		x.w.Header().Set("Connection", "close")
		return tooLarge(s.maxBody)
	}
	if x.r.ContentLength > 0 && rc == nil {
		// Sized at once only for a body already in the server's buffer; one
		// still to come grows as it arrives (ReadFrom doubles), so a
		// declared length costs nothing until it is sent.
		x.bodyBuf.Grow(int(x.r.ContentLength) + 1)
	}
	_, err := x.bodyBuf.ReadFrom(x.limit(x.r.Body, s.maxBody+1))
	if err != nil {
		// The deadline stays: the server must not wait for the rest of
		// the body before answering, and the connection is not reused.
		x.w.Header().Set("Connection", "close")
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return &openai.Error{Status: http.StatusRequestTimeout, Type: openai.TypeInvalidRequest, Code: "body_timeout", Message: "the request body did not arrive in time"}
		}
		return openai.BadRequest("body_read_error", "could not read the request body", "")
	}
	if int64(x.bodyBuf.Len()) > s.maxBody {
		x.w.Header().Set("Connection", "close")
		return tooLarge(s.maxBody)
	}
	if rc != nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if gzipped {
		if err := s.gunzip(x); err != nil {
			return err
		}
	}
	x.body = x.bodyBuf.Bytes()
	if x.api != apiOpenAI {
		return nil // the translate stage decodes the client's API
	}
	if err := openai.ParseInto(&x.req, x.ep, x.body); err != nil {
		var oe *openai.Error
		if errors.As(err, &oe) {
			return oe
		}
		return openai.BadRequest("invalid_request", err.Error(), "")
	}
	return nil
}

// gunzip replaces the gzip body in x.bodyBuf by its contents, bounded by
// the body limit as it decompresses: a small bomb costs at most maxBody
// bytes of output before it is refused.
func (s *parseStage) gunzip(x *exchange) *openai.Error {
	compressed := bytes.Clone(x.bodyBuf.Bytes())
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return openai.BadRequest("invalid_gzip", "the request body is not valid gzip", "")
	}
	x.bodyBuf.Reset()
	_, err = x.bodyBuf.ReadFrom(x.limit(zr, s.maxBody+1))
	if int64(x.bodyBuf.Len()) > s.maxBody {
		return tooLarge(s.maxBody)
	}
	if err != nil {
		return openai.BadRequest("invalid_gzip", "the request body is not valid gzip", "")
	}
	return nil
}

func tooLarge(limit int64) *openai.Error {
	return &openai.Error{Status: http.StatusRequestEntityTooLarge, Type: openai.TypeInvalidRequest, Code: "request_too_large",
		Message: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
