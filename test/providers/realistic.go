package providers

import (
	"strconv"
	"strings"
)

// A stand-in no test scripts answers like the real service would: when
// the request offers tools (and does not forbid them) and the
// conversation holds no tool result yet, the model calls the first tool;
// otherwise it answers in text. Usage is never zero: input counts a token
// per four bytes of the request body, output one per word answered (eight
// for a call), so a gateway that drops or invents usage is caught, and
// a request answering a tool call reports half its prompt as cache reads;
// the numbers each stand-in reported are kept (Reported) for a test to
// compare with what clients and the audit log saw.

// ToolArguments is the arguments JSON of an unscripted stand-in's call of
// tool name (the same shape test/mockllm uses).
func ToolArguments(name string) string { return `{"tool":` + strconv.Quote(name) + `,"n":1}` }

// ToolAnswerText is an unscripted stand-in's text once the conversation
// holds a tool result.
const ToolAnswerText = "The tool answered, so here is the summary."

// AnswerText is an unscripted stand-in's text to a plain request.
func AnswerText(kind string) string { return "Hello from the " + kind + " stand-in." }

// JSONText is an unscripted stand-in's text when the request asks for JSON
// (a response format or JSON mime type, where the provider has one).
func JSONText(kind string) string { return `{"answer":` + strconv.Quote(AnswerText(kind)) + `}` }

// realistic is the reply to an unscripted request of kind whose first
// offered tool is firstTool ("" for none or when tools are forbidden);
// answered says the conversation already holds a tool result, wantJSON
// that the request asked for a JSON answer.
func realistic(kind, firstTool string, answered, wantJSON bool, body []byte) Reply {
	in := int64(len(body)/4 + 1)
	if firstTool != "" && !answered {
		return Reply{Calls: []Call{{ID: "call_" + kind + "_1", Name: firstTool, Args: ToolArguments(firstTool)}},
			Usage: Usage{Input: in, Output: 8}}
	}
	text := AnswerText(kind)
	if answered {
		text = ToolAnswerText
	}
	if wantJSON {
		text = JSONText(kind)
	}
	u := Usage{Input: in, Output: int64(len(strings.Fields(text)))}
	if answered {
		// The turn after a tool call repeats the conversation so far,
		// which a provider's prompt cache serves: half the prompt is
		// reported as cache reads (Input stays the uncached part).
		u.CacheRead = in / 2
		u.Input = in - u.CacheRead
	}
	return Reply{Text: text, Pieces: 3, Usage: u}
}
