package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/messages"
	"github.com/infergate/infergate/l7/translate/responses"
)

// Inbound APIs. Besides OpenAI's own endpoints the gateway serves
// Anthropic's Messages API and OpenAI's Responses API by translation: the
// translate stage turns the client's request into a chat-completions
// request (the pivot) right after the body is read, so every later stage
// (model, inspection of every text part, counting, limits, routing,
// billing) reads it as it reads a native one; the proxy sends the pivot
// upstream and hands the chat answer, whole or chunk by chunk, to the
// inbound's translator on its way back. Errors, whatever stage raises
// them, are written in the client API's error shape.
type apiKind uint8

const (
	apiOpenAI        apiKind = iota // the endpoint's own OpenAI API
	apiMessages                     // Anthropic POST /v1/messages
	apiMessagesCount                // Anthropic POST /v1/messages/count_tokens
	apiResponses                    // OpenAI POST /v1/responses
	apiKinds
)

// apiNames label the API in metrics; apiPaths in the audit log (below
// /v1, as the OpenAI endpoints' paths are).
var (
	apiNames = [apiKinds]string{"openai", "anthropic.messages", "anthropic.count_tokens", "openai.responses"}
	apiPaths = [apiKinds]string{"", "/messages", "/messages/count_tokens", "/responses"}
)

// endpointPath is what the audit log records as the endpoint.
func (x *exchange) endpointPath() string {
	if x.api != apiOpenAI {
		return apiPaths[x.api]
	}
	return x.ep.Path()
}

// inbound is one request's translator back to its client's API.
type inbound interface {
	// startStream readies the stream translator; prompt is the
	// gateway's count of the prompt (Anthropic's first event reports the
	// input tokens before the upstream's usage is known).
	startStream(prompt int64)
	// whole translates a whole chat response body.
	whole(chat []byte) ([]byte, error)
	// chunk appends the client's events for one chat chunk's data.
	chunk(data, dst []byte) ([]byte, error)
	// end appends the closing events; fallback is the usage reported
	// when the upstream sent none.
	end(fallback *chatwire.Usage, dst []byte) []byte
	// streamError appends an error event in the client's stream.
	streamError(status int, code, msg string, dst []byte) []byte
}

type messagesInbound struct {
	info   messages.Info
	stream *messages.Stream
}

func (m *messagesInbound) startStream(prompt int64)          { m.stream = messages.NewStream(m.info, prompt) }
func (m *messagesInbound) whole(chat []byte) ([]byte, error) { return messages.FromChat(chat, m.info) }
func (m *messagesInbound) chunk(data, dst []byte) ([]byte, error) {
	return m.stream.Chunk(data, dst)
}
func (m *messagesInbound) end(u *chatwire.Usage, dst []byte) []byte { return m.stream.End(u, dst) }
func (m *messagesInbound) streamError(status int, _, msg string, dst []byte) []byte {
	return messages.ErrorEvent(status, msg, dst)
}

type responsesInbound struct {
	info   responses.Info
	stream *responses.Stream
}

func (r *responsesInbound) startStream(int64) { r.stream = responses.NewStream(r.info) }
func (r *responsesInbound) whole(chat []byte) ([]byte, error) {
	return responses.FromChat(chat, r.info)
}
func (r *responsesInbound) chunk(data, dst []byte) ([]byte, error) {
	return r.stream.Chunk(data, dst)
}
func (r *responsesInbound) end(u *chatwire.Usage, dst []byte) []byte { return r.stream.End(u, dst) }
func (r *responsesInbound) streamError(_ int, code, msg string, dst []byte) []byte {
	if r.stream == nil {
		r.startStream(0)
	}
	return r.stream.ErrorEvent(code, msg, dst)
}

// writeError writes err in the shape of the exchange's client API.
func (x *exchange) writeError(err *openai.Error) { writeAPIError(x.w, x.api, err) }

func writeAPIError(w http.ResponseWriter, api apiKind, err *openai.Error) {
	if api != apiMessages && api != apiMessagesCount {
		// The Responses API's errors have OpenAI's shape.
		err.Write(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(err.Status)
	_, _ = w.Write(messages.ErrorBody(err.Status, err.Message))
}

// upstreamErrorBody re-shapes an upstream's error body (passed through
// for OpenAI's APIs) for the client's API.
func (x *exchange) upstreamErrorBody(status int, b []byte) []byte {
	if x.api == apiMessages || x.api == apiMessagesCount {
		return messages.UpstreamError(status, b)
	}
	return b
}

// pivotUsage is the exchange's usage as the translators take it.
func pivotUsage(u *openai.Usage) *chatwire.Usage {
	if u == nil {
		return nil
	}
	return &chatwire.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}

// wholeAsStream answers a streamed request whose upstream sent a whole
// response (some servers ignore stream): the answer goes through the
// stream translator as one chunk, so the client still gets its events.
func wholeAsStream(in inbound, chat []byte, dst []byte) ([]byte, error) {
	c, err := chatwire.ParseResponse(chat)
	if err != nil {
		return dst, err
	}
	ch := c.Choices[0]
	finish := ch.FinishReason
	m := &ch.Message
	delta := chatwire.Delta{Role: m.Role, Content: m.Content, Refusal: m.Refusal, ReasoningContent: m.ReasoningContent}
	for i, tc := range m.ToolCalls {
		j := i
		delta.ToolCalls = append(delta.ToolCalls, chatwire.ChunkToolCall{Index: &j, ID: tc.ID, Type: tc.Type,
			Function: chatwire.ChunkFunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
	}
	chunk := chatwire.Chunk{ID: c.ID, Model: c.Model, Created: c.Created,
		Choices: []chatwire.ChunkChoice{{Delta: delta, FinishReason: &finish, StopReason: ch.StopReason}}, Usage: c.Usage}
	b, err := json.Marshal(&chunk)
	if err != nil {
		return dst, err
	}
	if dst, err = in.chunk(b, dst); err != nil {
		return dst, err
	}
	return in.end(c.Usage, dst), nil
}

// errAnswered ends the chain of a request a stage has answered itself
// (count_tokens): fail records it and writes nothing, as the head went.
var errAnswered = &openai.Error{Status: http.StatusOK}

// apiMetrics counts requests per inbound API and status class.
type apiMetrics struct {
	requests [apiKinds][6]prometheus.Counter
}

func newAPIMetrics(reg prometheus.Registerer) (*apiMetrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infergate_api_requests_total",
		Help: "Requests by the client's API (openai, anthropic.messages, anthropic.count_tokens, openai.responses) and status class."},
		[]string{"api", "code"})
	if err := reg.Register(vec); err != nil {
		return nil, err
	}
	m := &apiMetrics{}
	classes := [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	for a := range apiKinds {
		for c := range classes {
			m.requests[a][c] = vec.WithLabelValues(apiNames[a], classes[c])
		}
	}
	return m, nil
}

func (m *apiMetrics) observe(api apiKind, status int) {
	if m == nil {
		return
	}
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	m.requests[api][c].Inc()
}

var errNotTranslatable = errors.New("the upstream answer could not be translated")

// streamUntranslatable ends a translated stream whose upstream sent an
// error event, or an event the translator cannot place (not a chat chunk,
// or tool-call fragments interleaved): an error event in the client's
// API, recorded as a 502, as a broken stream is.
func (x *exchange) streamUntranslatable(rc *http.ResponseController, err error) {
	x.status = http.StatusBadGateway
	x.errMsg = "upstream_untranslatable"
	msg := errNotTranslatable.Error() + ": " + err.Error()
	var ue *chatwire.UpstreamError
	if errors.As(err, &ue) {
		x.errMsg, msg = "upstream_stream_error", truncate(ue.Message, 1024)
	}
	b := x.in.streamError(http.StatusBadGateway, x.errMsg, msg, nil)
	if _, werr := x.w.Write(b); werr != nil {
		x.clientGone = true
		return
	}
	_ = rc.Flush()
}
