// Package chatwire holds the OpenAI chat-completions wire shapes, the
// gateway's pivot, for both sides of translation. The inbound translators
// (l7/translate/messages, l7/translate/responses) write a Request from a
// client API's request, so that every later stage (inspection, counting,
// limits, routing) reads it as it reads a native one, and read the
// upstream's Response or Chunks back into the client's API. The provider
// translators (l7/translate/outbound and its kinds) read a Request and
// write a Response or Chunks from another provider's answer. One set of
// types serves both, so the two sides cannot drift apart on what a chat
// request or answer is.
//
// Only the fields the translators carry are declared; a field one side
// does not use is left out when empty. Requests are written with
// encoding/json through their pointer (they are built once per request);
// chunks are decoded one per streamed event, into a reused value.
package chatwire

// RequestError is a client request a translator refuses: the gateway
// answers it 400 in the client API's error shape. Param names the field.
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

// Bad returns a RequestError.
func Bad(param, msg string) *RequestError { return &RequestError{Param: param, Message: msg} }

// Text returns a pointer to s, for Delta and ResponseMessage fields.
func Text(s string) *string { return &s }
