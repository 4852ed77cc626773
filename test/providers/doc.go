// Package providers holds stand-ins for the external model providers the
// gateway translates to: Anthropic's Messages API, Amazon Bedrock's
// Converse and ConverseStream, Google's Gemini generateContent and
// streamGenerateContent, and Azure OpenAI's deployments. Each follows its
// published API reference as strictly as the real service, so a
// translation that would fail against the provider fails here:
//
//   - Anthropic: POST /v1/messages with x-api-key and anthropic-version;
//     model, max_tokens (mandatory) and messages required; unknown fields
//     refused; turns must start with user and alternate; every tool_result
//     must answer a tool_use of the turn before; image sources base64 or url;
//     thinking (budget_tokens at least 1024 and below max_tokens), a tool's
//     cache_control and tool_choice's disable_parallel_tool_use accepted.
//   - Bedrock: a SigV4 signature recomputed with the known secret by the
//     same algorithm (the AWS SDK's signer) and compared, the date within
//     five minutes and x-amz-content-sha256 the body's hash; a content
//     block holds exactly one member; ConverseStream answers in the AWS
//     event-stream framing with both CRC32s, written here independently of
//     the gateway's decoder.
//   - Gemini: x-goog-api-key; roles only user and model (unset reads as
//     user, as the reference's single-turn examples send); a part holds
//     exactly one datum; a functionResponse must name a function called in
//     the turn before; streamGenerateContent needs alt=sse.
//   - Azure OpenAI: /openai/deployments/{deployment}/chat/completions with
//     an api-version query and the api-key header or a bearer token.
//
// A stand-in answers what the test scripts (Reply) in the provider's own
// shape, or, unscripted, as the real service would (realistic.go: the
// forced or first offered tool until a tool result comes back, JSON when
// asked, non-zero usage); it keeps the last request it accepted and the
// usage of every answer (Reported) for assertions.
//
// The providers' own example payloads (testdata, sources in its README)
// keep the stand-ins honest: a documented request must pass them, a
// documented answer must decode through the translators.
package providers

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// Reply is what a stand-in answers, in provider-neutral terms that each
// stand-in writes in its own API's shape.
type Reply struct {
	// Status, when not 0 or 200, answers an error of that status in the
	// provider's error shape with ErrorMessage.
	Status       int
	ErrorMessage string
	// Text is split into Pieces stream events (at least 1).
	Text   string
	Pieces int
	// Reasoning is thinking text (Anthropic thinking, Bedrock
	// reasoningContent, Gemini thought parts).
	Reasoning string
	Calls     []Call
	// Stop is the provider's own stop reason (e.g. end_turn, tool_use,
	// max_tokens; Gemini STOP, MAX_TOKENS, SAFETY).
	Stop  string
	Usage Usage
	// BreakAfter, when > 0, ends a stream abruptly after that many events.
	BreakAfter int
}

// Call is a tool call the model makes.
type Call struct {
	ID, Name, Args string
}

// Usage in provider-neutral terms.
type Usage struct {
	Input, Output, CacheRead, CacheWrite, Reasoning int64
}

// pieces splits s into n pieces (at least one).
func pieces(s string, n int) []string {
	if n < 1 {
		n = 1
	}
	if n > len(s) {
		n = max(len(s), 1)
	}
	var out []string
	step := (len(s) + n - 1) / n
	for i := 0; i < len(s); i += step {
		out = append(out, s[i:min(i+step, len(s))])
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

// recorder keeps the last accepted request and the script.
type recorder struct {
	mu     sync.Mutex
	reply  func(body map[string]any) Reply
	last   map[string]any
	header http.Header
	path   string
	count  int
	// reported is the usage of every successful answer, in order.
	reported []Usage
}

// Script sets the reply function.
func (r *recorder) Script(f func(body map[string]any) Reply) {
	r.mu.Lock()
	r.reply = f
	r.mu.Unlock()
}

// Always answers rep to every request.
func (r *recorder) Always(rep Reply) { r.Script(func(map[string]any) Reply { return rep }) }

// Last returns the last accepted request body (decoded), its header and path.
func (r *recorder) Last() (map[string]any, http.Header, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.header, r.path
}

// Count is the number of requests accepted.
func (r *recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Reported is the usage of every successful answer so far, in order.
func (r *recorder) Reported() []Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Usage(nil), r.reported...)
}

// accept records an accepted request and says what to answer: the
// script's reply, or def when no test scripted one.
func (r *recorder) accept(req *http.Request, body []byte, def Reply) Reply {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.header, r.path = m, req.Header.Clone(), req.URL.RequestURI()
	r.count++
	rep := def
	if r.reply != nil {
		rep = r.reply(m)
	}
	if rep.Status == 0 || rep.Status == 200 {
		r.reported = append(r.reported, rep.Usage)
	}
	return rep
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// strictDecode decodes b into v refusing unknown fields.
func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
