package gateway

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/messages"
	"github.com/infergate/infergate/l7/translate/responses"
)

// translateStage turns a request of another inbound API (Anthropic's
// Messages, OpenAI's Responses) into the chat-completions request every
// later stage reads, and keeps the translator for the answer. It runs
// right after the body is read (parse leaves such a body undecoded), so
// inspection sees every text part of the client's request (system
// prompts, tool arguments and results, schemas) as chat texts, counting
// and limits count what the upstream will read, and routing and billing
// are the same whichever API the client speaks. OpenAI's own endpoints
// pass through untouched.
//
// Reads: x.api, x.body, x.r's head. Writes: x.body (the pivot), x.req,
// x.in.
type translateStage struct{}

func newTranslateStage(*Gateway, *config) (stage, error) { return translateStage{}, nil }

// anthropicVersion is the header the Messages API requires.
const anthropicVersion = "Anthropic-Version"

func (translateStage) serve(x *exchange) *openai.Error {
	if x.api == apiOpenAI {
		return nil
	}
	var pivot []byte
	var err error
	switch x.api {
	case apiMessages, apiMessagesCount:
		if v := x.r.Header[anthropicVersion]; len(v) == 0 || v[0] == "" {
			return openai.BadRequest("missing_header", "anthropic-version: header is required", "anthropic-version")
		}
		var info messages.Info
		pivot, info, err = messages.ToChat(x.body, x.api == apiMessagesCount)
		if err == nil {
			x.in = &messagesInbound{info: info}
		}
	case apiResponses:
		var info responses.Info
		pivot, info, err = responses.ToChat(x.body)
		if err == nil {
			x.in = &responsesInbound{info: info}
		}
	}
	if err != nil {
		var re *chatwire.RequestError
		if errors.As(err, &re) {
			return openai.BadRequest("invalid_request", re.Error(), re.Param)
		}
		return openai.BadRequest("invalid_request", err.Error(), "")
	}
	x.body = pivot
	if perr := openai.ParseInto(&x.req, openai.ChatCompletions, x.body); perr != nil {
		var oe *openai.Error
		if errors.As(perr, &oe) {
			return oe
		}
		return openai.BadRequest("invalid_request", perr.Error(), "")
	}
	return nil
}

// tokenCountStage answers Anthropic's count_tokens with the gateway's own
// count of the translated prompt (what the upstream would read), without
// going upstream or reserving against limits. Other requests pass.
//
// Reads: x.api, x.promptTokens. Writes: the response.
type tokenCountStage struct{}

func newTokenCountStage(*Gateway, *config) (stage, error) { return tokenCountStage{}, nil }

func (tokenCountStage) serve(x *exchange) *openai.Error {
	if x.api != apiMessagesCount {
		return nil
	}
	b := messages.CountTokens(x.promptTokens)
	h := x.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	x.status = http.StatusOK
	x.wroteHeader = true
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(b)
	return errAnswered
}
