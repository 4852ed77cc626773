package openai

import "testing"

func TestFindFinishReason(t *testing.T) {
	for in, want := range map[string]string{
		`{"choices":[{"index":0,"message":{"content":"hi"},"finish_reason":"stop"}]}`:            "stop",
		`{"choices":[{"delta":{"content":"a"},"finish_reason":null}]}`:                           "",
		`{"choices":[{"finish_reason":"length"},{"finish_reason" : "stop"}]}`:                    "stop",
		`{"choices":[{"finish_reason":"tool_calls","delta":{"content":"\"finish_reason\":5"}}]}`: "tool_calls",
		`{"choices":[{"finish_reason":7}]}`:                                                      "",
		`{}`:                                                                                     "",
	} {
		if got := FindFinishReason([]byte(in)); got != want {
			t.Errorf("FindFinishReason(%s) = %q, want %q", in, got, want)
		}
	}
}
