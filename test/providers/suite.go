package providers

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Scripted is a stand-in whose replies a test scripts.
type Scripted interface {
	Always(Reply)
	Last() (map[string]any, http.Header, string)
}

// Kind says how a provider spells what the suite checks.
type Kind struct {
	// LengthStop and FilterStop are the provider's stop reasons for a
	// length cut and a content filter.
	LengthStop, FilterStop string
	// CachedInPrompt: the provider's input count already includes cache
	// reads (Gemini), so the stand-in's Input is the uncached part either way.
	Reasoning bool // the provider reports reasoning tokens separately
}

// ChatResponse is what the suite reads from a chat completion.
type ChatResponse struct {
	Choices []struct {
		Message struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int64 `json:"prompt_tokens"`
		CompletionTokens    int64 `json:"completion_tokens"`
		TotalTokens         int64 `json:"total_tokens"`
		PromptTokensDetails *struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails *struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	} `json:"usage"`
	Error *struct {
		Type    string  `json:"type"`
		Message string  `json:"message"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// Post sends a chat-completions body through rt.
func Post(t testing.TB, rt http.RoundTripper, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://gateway.invalid/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Whole posts and decodes a whole answer.
func Whole(t testing.TB, rt http.RoundTripper, body string) (int, ChatResponse) {
	t.Helper()
	resp := Post(t, rt, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var cr ChatResponse
	if err := json.Unmarshal(b, &cr); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	if resp.StatusCode == 200 && cr.Error != nil || resp.StatusCode != 200 && cr.Error == nil {
		t.Fatalf("status %d with body %s", resp.StatusCode, b)
	}
	return resp.StatusCode, cr
}

// StreamResult is a chat-completions stream put back together.
type StreamResult struct {
	Text, Reasoning string
	Calls           map[int]*struct{ ID, Name, Args string }
	Finish          string
	Usage           map[string]any
	Done            bool
	Chunks          int
	Err             error
}

// Stream posts a streamed request and reassembles the chat chunks, each
// checked to be a valid chat.completion.chunk.
func Stream(t testing.TB, rt http.RoundTripper, body string) (int, StreamResult) {
	t.Helper()
	resp := Post(t, rt, body)
	defer resp.Body.Close()
	res := StreamResult{Calls: map[int]*struct{ ID, Name, Args string }{}}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		res.Text = string(b)
		return resp.StatusCode, res
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			if line != "" {
				t.Fatalf("unexpected stream line %q", line)
			}
			continue
		}
		if d == "[DONE]" {
			res.Done = true
			continue
		}
		if res.Done {
			t.Fatalf("data after [DONE]: %s", d)
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Content          *string `json:"content"`
					ReasoningContent string  `json:"reasoning_content"`
					ToolCalls        []struct {
						Index    int    `json:"index"`
						ID       string `json:"id"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil || c.Object != "chat.completion.chunk" || c.Choices == nil {
			t.Fatalf("chunk %s is not a chat.completion.chunk (%v)", d, err)
		}
		res.Chunks++
		if c.Usage != nil {
			res.Usage = c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				res.Text += *ch.Delta.Content
			}
			res.Reasoning += ch.Delta.ReasoningContent
			for _, tc := range ch.Delta.ToolCalls {
				call := res.Calls[tc.Index]
				if call == nil {
					call = &struct{ ID, Name, Args string }{}
					res.Calls[tc.Index] = call
				}
				if tc.ID != "" {
					call.ID = tc.ID
				}
				call.Name += tc.Function.Name
				call.Args += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				res.Finish = *ch.FinishReason
			}
		}
	}
	res.Err = sc.Err()
	return 200, res
}

const (
	// Pixel is a 1x1 PNG.
	Pixel    = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	weather  = `{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}`
	toolTurn = `{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"toolu_1","content":"{\"temp_c\":21}"}`
)

// RunSuite drives the translation through rt against the stand-in s:
// text, system prompts, tools, multi-turn tool use, images, stop reasons,
// usage (cached and reasoning tokens) and errors, whole and streamed.
func RunSuite(t *testing.T, rt http.RoundTripper, s Scripted, k Kind) {
	t.Run("text", func(t *testing.T) {
		s.Always(Reply{Text: "Hello there.", Usage: Usage{Input: 12, Output: 3}})
		st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Hi"}],"max_tokens":50,"temperature":0.2,"stop":["END"]}`)
		if st != 200 || len(cr.Choices) != 1 || cr.Choices[0].Message.Content == nil || *cr.Choices[0].Message.Content != "Hello there." ||
			cr.Choices[0].FinishReason != "stop" || cr.Choices[0].Message.Role != "assistant" {
			t.Fatalf("%d %+v", st, cr)
		}
		if cr.Usage == nil || cr.Usage.PromptTokens != 12 || cr.Usage.CompletionTokens != 3 || cr.Usage.TotalTokens != 15 {
			t.Fatalf("usage %+v", cr.Usage)
		}
		body, _, _ := s.Last()
		if b, _ := json.Marshal(body); !strings.Contains(string(b), "Be terse.") {
			t.Fatalf("system prompt lost: %s", b)
		}
	})
	t.Run("tools", func(t *testing.T) {
		s.Always(Reply{Calls: []Call{{ID: "toolu_9", Name: "get_weather", Args: `{"city":"Oslo"}`}}, Usage: Usage{Input: 40, Output: 9}})
		st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":"Weather in Oslo?"}],"tools":[`+weather+`],"tool_choice":"required"}`)
		if st != 200 || len(cr.Choices[0].Message.ToolCalls) != 1 || cr.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("%d %+v", st, cr)
		}
		tc := cr.Choices[0].Message.ToolCalls[0]
		var args map[string]string
		if tc.Type != "function" || tc.Function.Name != "get_weather" || json.Unmarshal([]byte(tc.Function.Arguments), &args) != nil || args["city"] != "Oslo" || tc.ID == "" {
			t.Fatalf("tool call %+v", tc)
		}
	})
	t.Run("multi-turn tool use", func(t *testing.T) {
		s.Always(Reply{Text: "21 degrees in Paris.", Usage: Usage{Input: 60, Output: 6}})
		st, cr := Whole(t, rt, `{"model":"m1","messages":[`+toolTurn+`],"tools":[`+weather+`]}`)
		if st != 200 || *cr.Choices[0].Message.Content != "21 degrees in Paris." {
			t.Fatalf("%d %+v", st, cr)
		}
		body, _, _ := s.Last()
		if b, _ := json.Marshal(body); !strings.Contains(string(b), "temp_c") {
			t.Fatalf("tool result lost: %s", b)
		}
	})
	t.Run("image", func(t *testing.T) {
		s.Always(Reply{Text: "A pixel.", Usage: Usage{Input: 90, Output: 3}})
		st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,`+Pixel+`"}}]}]}`)
		if st != 200 || *cr.Choices[0].Message.Content != "A pixel." {
			t.Fatalf("%d %+v", st, cr)
		}
		body, _, _ := s.Last()
		if b, _ := json.Marshal(body); !strings.Contains(string(b), Pixel) {
			t.Fatalf("image lost: %s", b)
		}
	})
	t.Run("bad image refused", func(t *testing.T) {
		st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,!!!"}}]}]}`)
		if st != 400 || cr.Error.Type != "invalid_request_error" {
			t.Fatalf("%d %+v", st, cr)
		}
	})
	t.Run("stop length", func(t *testing.T) {
		s.Always(Reply{Text: "Once upon", Stop: k.LengthStop, Usage: Usage{Input: 5, Output: 2}})
		if st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":"story"}],"max_tokens":2}`); st != 200 || cr.Choices[0].FinishReason != "length" {
			t.Fatalf("%d %+v", st, cr)
		}
	})
	t.Run("stop filter", func(t *testing.T) {
		s.Always(Reply{Text: "x", Stop: k.FilterStop, Usage: Usage{Input: 5, Output: 1}})
		if st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":"story"}]}`); st != 200 || cr.Choices[0].FinishReason != "content_filter" {
			t.Fatalf("%d %+v", st, cr)
		}
	})
	t.Run("cached and reasoning usage", func(t *testing.T) {
		s.Always(Reply{Text: "ok", Reasoning: "thinking...", Usage: Usage{Input: 10, CacheRead: 100, Output: 20, Reasoning: 15}})
		st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":"hi"}]}`)
		if st != 200 || cr.Usage == nil || cr.Usage.PromptTokensDetails == nil || cr.Usage.PromptTokensDetails.CachedTokens != 100 || cr.Usage.PromptTokens < 110 {
			t.Fatalf("%d usage %+v", st, cr.Usage)
		}
		if k.Reasoning && (cr.Usage.CompletionTokensDetails == nil || cr.Usage.CompletionTokensDetails.ReasoningTokens != 15 || cr.Usage.CompletionTokens != 35) {
			t.Fatalf("reasoning usage %+v", cr.Usage.CompletionTokensDetails)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			status, want int
			typ          string
		}{{429, 429, "rate_limit_error"}, {400, 400, "invalid_request_error"}, {500, 500, "server_error"}} {
			s.Always(Reply{Status: c.status, ErrorMessage: "scripted failure"})
			st, cr := Whole(t, rt, `{"model":"m1","messages":[{"role":"user","content":"hi"}]}`)
			if st != c.want || cr.Error.Type != c.typ || cr.Error.Message != "scripted failure" {
				t.Fatalf("provider %d: got %d %+v", c.status, st, cr.Error)
			}
		}
	})
	t.Run("stream text", func(t *testing.T) {
		s.Always(Reply{Text: "The quick brown fox jumps.", Pieces: 5, Usage: Usage{Input: 8, Output: 6}})
		st, res := Stream(t, rt, `{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"fox"}]}`)
		if st != 200 || res.Err != nil || !res.Done || res.Text != "The quick brown fox jumps." || res.Finish != "stop" || res.Chunks < 5 {
			t.Fatalf("%d %+v", st, res)
		}
		if res.Usage == nil || res.Usage["prompt_tokens"] != float64(8) || res.Usage["completion_tokens"] != float64(6) {
			t.Fatalf("usage %v", res.Usage)
		}
	})
	t.Run("stream no usage unless asked", func(t *testing.T) {
		s.Always(Reply{Text: "abc", Usage: Usage{Input: 8, Output: 6}})
		if _, res := Stream(t, rt, `{"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]}`); res.Usage != nil || !res.Done {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("stream tool call", func(t *testing.T) {
		s.Always(Reply{Calls: []Call{{ID: "toolu_5", Name: "get_weather", Args: `{"city":"Rome"}`}}, Usage: Usage{Input: 8, Output: 6}})
		st, res := Stream(t, rt, `{"model":"m1","stream":true,"messages":[{"role":"user","content":"Rome?"}],"tools":[`+weather+`]}`)
		c := res.Calls[0]
		if st != 200 || c == nil || c.Name != "get_weather" || c.Args != `{"city":"Rome"}` || c.ID == "" || res.Finish != "tool_calls" {
			t.Fatalf("%d %+v %+v", st, res, c)
		}
	})
	t.Run("stream broken", func(t *testing.T) {
		s.Always(Reply{Text: "This will break off.", Pieces: 6, BreakAfter: 3})
		_, res := Stream(t, rt, `{"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]}`)
		if res.Err == nil || res.Done {
			t.Fatalf("a broken provider stream must end in an error, not [DONE]: %+v", res)
		}
	})
	t.Run("stream error status", func(t *testing.T) {
		s.Always(Reply{Status: 429, ErrorMessage: "slow down"})
		if st, res := Stream(t, rt, `{"model":"m1","stream":true,"messages":[{"role":"user","content":"x"}]}`); st != 429 || !strings.Contains(res.Text, "rate_limit_error") {
			t.Fatalf("%d %+v", st, res)
		}
	})
}
