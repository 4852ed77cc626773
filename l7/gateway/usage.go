package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/infergate/infergate/l7/openai"
)

// When the upstream reports no usage the gateway still knows it exactly:
// the prompt it counted and the completion text it relayed. The client then
// gets that count, marked as the gateway's: a response field
// X-Infergate-Usage: gateway-counted on whole responses, and on streams
// (whose head has left before the end is known) a field
// "infergate_usage":"gateway-counted" in the usage chunk.
const (
	usageSourceHeader   = "X-Infergate-Usage"
	usageGatewayCounted = "gateway-counted"
)

// countedUsage is the gateway's count of the exchange, remembered as its
// usage (billed as counted, not as upstream's).
func (x *exchange) countedUsage() openai.Usage {
	var completion int64
	if x.ep != openai.Embeddings {
		completion = x.countedCompletion()
	}
	x.usageStore = openai.Usage{PromptTokens: x.promptTokens, CompletionTokens: completion, TotalTokens: x.promptTokens + completion}
	x.usage = &x.usageStore
	x.usageCounted = true
	return x.usageStore
}

// appendUsage adds a usage object to a whole JSON response body, false if
// the body is not an object.
func appendUsage(body []byte, u openai.Usage) ([]byte, bool) {
	b := bytes.TrimRight(body, " \t\r\n")
	if len(b) < 2 || b[len(b)-1] != '}' || bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
		return nil, false
	}
	inner := bytes.TrimRight(b[:len(b)-1], " \t\r\n")
	out := make([]byte, 0, len(b)+128)
	out = append(out, inner...)
	if inner[len(inner)-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, `"usage":`...)
	out = appendUsageObject(out, u)
	return append(out, '}'), true
}

func appendUsageObject(b []byte, u openai.Usage) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, u.CompletionTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, u.TotalTokens, 10)
	return append(b, '}')
}

// usageChunk is the stream event carrying the gateway's count, shaped as
// the upstream's own usage chunk would be (no choices).
func (x *exchange) usageChunk() []byte {
	u := x.countedUsage()
	object := "chat.completion.chunk"
	if x.ep == openai.Completions {
		object = "text_completion"
	}
	b := append([]byte(nil), `data: {"id":`...)
	b = strconv.AppendQuote(b, x.id)
	b = append(b, `,"object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"model":`...)
	b = strconv.AppendQuote(b, truncate(x.req.Model, 256))
	b = append(b, `,"choices":[],"usage":`...)
	b = appendUsageObject(b, u)
	b = append(b, `,"infergate_usage":"`+usageGatewayCounted+`"}`+"\n\n"...)
	return b
}

// streamBroken ends a stream whose upstream broke off after it started:
// an error event the OpenAI SDKs raise (their streams carry errors as
// data: {"error":{...}}), no [DONE], and the exchange recorded as a 502.
func (x *exchange) streamBroken(rc *http.ResponseController) {
	x.status = http.StatusBadGateway
	x.errMsg = "upstream_stream_broken"
	e := openai.Error{Type: openai.TypeUpstream, Code: "upstream_stream_broken", Message: "the upstream stream broke off before it ended"}
	b := append([]byte("data: "), e.Marshal()...)
	b = append(b, "\n\n"...)
	if x.in != nil {
		b = x.in.streamError(http.StatusBadGateway, e.Code, e.Message, nil)
	}
	if _, err := x.w.Write(b); err != nil {
		x.clientGone = true
		return
	}
	_ = rc.Flush()
}
