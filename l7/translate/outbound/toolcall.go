package outbound

import (
	"bytes"
	"encoding/json"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Tool calls cross in both directions: a client's earlier call (its JSON
// arguments as a string) becomes a provider's tool-use block, whose input
// must be a JSON object, and a provider's tool use comes back as a chat
// tool call. An absent input is the empty object either way.

// CallInput is the provider input for a chat tool call's arguments: the
// arguments as JSON, {} when empty; anything but an object is the client's
// error.
func CallInput(args string) (json.RawMessage, error) {
	in := json.RawMessage(args)
	if len(bytes.TrimSpace(in)) == 0 {
		in = json.RawMessage("{}")
	}
	if !json.Valid(in) || bytes.TrimSpace(in)[0] != '{' {
		return nil, Invalid("tool call arguments must be a JSON object")
	}
	return in, nil
}

// ToolCall is the chat tool call for a provider's tool use.
func ToolCall(id, name string, input json.RawMessage) chatwire.ToolCall {
	return chatwire.ToolCall{ID: id, Type: "function", Function: chatwire.FunctionCall{Name: name, Arguments: CallArguments(input)}}
}

// CallArguments is a provider's tool input as chat arguments: {} when the
// provider sent none.
func CallArguments(input json.RawMessage) string {
	if len(input) == 0 {
		return "{}"
	}
	return string(input)
}

// Answer is the assistant's message of a whole answer: its text (null
// when the message only calls tools, as chat completions has it), its
// reasoning and its tool calls.
func Answer(text, reasoning string, calls []chatwire.ToolCall) chatwire.ResponseMessage {
	m := chatwire.ResponseMessage{Role: "assistant", ToolCalls: calls, ReasoningContent: reasoning}
	if text != "" || len(calls) == 0 {
		m.Content = chatwire.Text(text)
	}
	return m
}
