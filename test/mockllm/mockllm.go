// Package mockllm is an OpenAI-compatible mock inference server for tests,
// demos and benchmarks. Its GPU is test/gpumodel's engine, the same model
// the scheduling simulation steps in virtual time, run here in real time
// (gpumodel.Live): continuous batching with a bounded batch and a queue,
// so time to first token grows with load. By default the GPU has fixed
// timings (Config.TTFT per prefill step, 1/TokensPerSecond per decode
// step); Config.GPU gives it the roofline of a real card instead. It
// streams deterministic text, serves vLLM-style /metrics, can be told to
// fail or slowed down (SetSpeed), and remembers the last request bodies it
// received so tests can see exactly what a proxy forwarded.
package mockllm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/infergate/infergate/test/gpumodel"
)

// Defaults and bounds.
const (
	DefaultName          = "mock-model"
	DefaultGPUs          = 1
	DefaultBatch         = 64
	DefaultQueue         = 4096
	DefaultMaxTokens     = 16
	DefaultKeepRequests  = 32
	DefaultMaxBodyBytes  = 8 << 20
	maxGenerateTokens    = 8192
	maxRecordedBodyBytes = 256 << 10
	maxEmbeddingInputs   = 2048
	// embeddingDims is the length of the mock's embeddings (embed.go).
	embeddingDims = 64
)

// Words is the fixed vocabulary of generated text. Every entry, written with
// its leading space, is a single token in both cl100k_base and o200k_base, so
// a completion of n words is n tokens.
var Words = []string{
	" the", " of", " and", " to", " in", " is", " that", " for", " it", " as",
	" was", " with", " be", " by", " on", " not", " he", " this", " are", " or",
	" his", " from", " at", " which", " but", " have", " an", " had", " they", " you",
}

// Config describes one mock server. Zero values take the defaults above.
type Config struct {
	// Name is the model served; requests for other models are still served
	// (the name only labels responses and metrics).
	Name string
	// TTFT is the time to first token once a batch slot is held.
	TTFT time.Duration
	// TokensPerSecond paces generation; 0 generates instantly.
	TokensPerSecond float64
	// GPUs and Batch bound concurrent generation to GPUs*Batch; beyond that
	// requests wait in a queue of at most Queue, and over it get 503.
	GPUs, Batch, Queue int
	// MaxTokens is the completion length when a request sets none.
	MaxTokens int
	// OmitUsage leaves usage out of every response, streamed or not.
	OmitUsage bool
	// KeepRequests is how many recent requests Requests() remembers.
	KeepRequests int
	MaxBodyBytes int64
	// GPU, when set, is the simulated card (gpumodel.H100, A10, ...),
	// whose roofline replaces TTFT, TokensPerSecond, GPUs and Batch; its
	// prefix cache is on.
	GPU *gpumodel.Spec
	// LoRAs are the LoRA adapters served as model names (vLLM's
	// --lora-modules), MaxLoRAs how many one batch may use (--max-loras,
	// default 1); with adapters, /metrics has vllm:lora_requests_info
	// (lora.go).
	LoRAs    []string
	MaxLoRAs int
}

// Failure makes the server misbehave; see SetFailure.
type Failure struct {
	// Status, when non-zero, answers requests with this status (500, 429, 503…).
	Status int
	// Hang holds requests without answering until the client gives up.
	Hang bool
	// BreakAfter, when > 0, cuts a stream (closes the connection without
	// [DONE] or usage) after that many content chunks.
	BreakAfter int
	// Count limits the failure to the next Count requests; 0 means all.
	Count int
}

// Recorded is one request as the server received it.
type Recorded struct {
	Time   time.Time   `json:"time"`
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// Server is the mock. Create it with New and serve Handler().
type Server struct {
	cfg Config
	gpu *gpumodel.Live
	mux *http.ServeMux

	total, canceled atomic.Int64
	completed       atomic.Int64
	seq             atomic.Uint64

	mu       sync.Mutex
	failure  Failure
	failLeft int
	recent   []Recorded
	next     int

	ext serverExt // kvevents.go (prefix cache, KV events), control.go (speed)
}

// New builds a server from cfg, filling defaults.
func New(cfg Config) *Server {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.GPUs <= 0 {
		cfg.GPUs = DefaultGPUs
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.KeepRequests <= 0 {
		cfg.KeepRequests = DefaultKeepRequests
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	spec, caching := gpumodel.FixedTiming(cfg.TTFT.Seconds(), 0, cfg.GPUs*cfg.Batch), false
	if cfg.TokensPerSecond > 0 {
		spec.FixedDecode = 1 / cfg.TokensPerSecond
	}
	if cfg.GPU != nil {
		spec, caching = *cfg.GPU, true
	}
	if len(cfg.LoRAs) > 0 {
		cfg.MaxLoRAs = max(cfg.MaxLoRAs, 1)
		spec.MaxLoras = cfg.MaxLoRAs
	}
	s := &Server{cfg: cfg, gpu: gpumodel.NewLive(spec, caching), mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/chat/completions", s.generate(kindChat))
	s.mux.HandleFunc("POST /v1/completions", s.generate(kindCompletion))
	s.mux.HandleFunc("POST /v1/embeddings", s.generate(kindEmbedding))
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	s.mux.HandleFunc("GET /debug/requests", s.debugRequests)
	s.mux.HandleFunc("GET /debug/stats", s.debugStats)
	return s
}

// Close stops the simulated GPU; requests in it never finish.
func (s *Server) Close() { s.gpu.Close() }

// SetSpeed runs the simulated GPU at fraction f of its speed (thermal
// throttling, a noisy neighbour), from its next step.
// The factor also scales the mock's own waits outside the GPU model (a
// prefill of uncached prefix blocks, a tool call's first token).
func (s *Server) SetSpeed(f float64) error {
	if err := s.gpu.SetSpeed(f); err != nil {
		return err
	}
	s.ext.speed.Store(math.Float64bits(f))
	return nil
}

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Handler serves the OpenAI-compatible API, /metrics, /health and /debug/*.
func (s *Server) Handler() http.Handler { return s.mux }

// SetFailure changes how the server misbehaves; the zero Failure heals it.
func (s *Server) SetFailure(f Failure) {
	s.mu.Lock()
	s.failure = f
	s.failLeft = f.Count
	s.mu.Unlock()
}

// takeFailure returns the failure that applies to the next request.
func (s *Server) takeFailure() Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failure
	if f.Count > 0 {
		if s.failLeft <= 0 {
			return Failure{}
		}
		s.failLeft--
	}
	return f
}

// Requests returns the remembered requests, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, 0, len(s.recent))
	if len(s.recent) < s.cfg.KeepRequests {
		return append(out, s.recent...)
	}
	out = append(out, s.recent[s.next:]...)
	return append(out, s.recent[:s.next]...)
}

// LastRequest returns the most recent request, if any.
func (s *Server) LastRequest() (Recorded, bool) {
	r := s.Requests()
	if len(r) == 0 {
		return Recorded{}, false
	}
	return r[len(r)-1], true
}

// Stats are the server's counters.
type Stats struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Canceled  int64 `json:"canceled"`
	Running   int64 `json:"running"`
	Waiting   int64 `json:"waiting"`
}

// Stats returns the counters; Canceled counts requests whose client went away
// before the response was complete.
func (s *Server) Stats() Stats {
	running, waiting, _ := s.gpu.Load()
	return Stats{Total: s.total.Load(), Completed: s.completed.Load(), Canceled: s.canceled.Load(),
		Running: int64(running), Waiting: int64(waiting)}
}

func (s *Server) record(r *http.Request, body []byte) {
	if len(body) > maxRecordedBodyBytes {
		body = body[:maxRecordedBodyBytes]
	}
	rec := Recorded{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)}
	s.mu.Lock()
	if len(s.recent) < s.cfg.KeepRequests {
		s.recent = append(s.recent, rec)
	} else {
		s.recent[s.next] = rec
		s.next = (s.next + 1) % s.cfg.KeepRequests
	}
	s.mu.Unlock()
}

type kind int

const (
	kindChat kind = iota
	kindCompletion
	kindEmbedding
)

// request holds the fields the mock reads.
type request struct {
	Model         string          `json:"model"`
	Messages      []message       `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Input         json.RawMessage `json:"input"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	// EncodingFormat is "float" (default) or "base64", as OpenAI's
	// embeddings API takes it; the official SDKs ask for base64.
	EncodingFormat string `json:"encoding_format"`
	// Tools and ToolChoice make the mock call a tool (tools.go).
	Tools      json.RawMessage `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

type message struct {
	Role    string  `json:"role"`
	Content bodyRef `json:"content"`
}

// bodyRef keeps a JSON value as the slice of the request body it came
// from, where json.RawMessage would copy it: the body stays untouched until
// the handler returns, and nothing keeps a bodyRef beyond that.
type bodyRef []byte

func (r *bodyRef) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// bodyPool holds request body buffers: a benchmark's mock reads thousands
// of prompts a second, and growing a fresh buffer for each one showed as
// a good part of its CPU and as garbage-collector pauses.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBody = 1 << 20

// Usage is OpenAI's usage object.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": nil, "param": nil}})
	_, _ = w.Write(b)
}

// approxTokens estimates prompt tokens as whitespace-separated words; the
// mock has no tokenizer, and a gateway bills the usage it is told.
func approxTokens(b []byte) int {
	n := countFields(b)
	if n == 0 && len(b) > 0 {
		n = 1
	}
	return n
}

// countFields is len(bytes.Fields(b)) without building the slices.
func countFields(b []byte) int {
	n, inField := 0, false
	for i := 0; i < len(b); {
		c := b[i]
		var space bool
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
			i++
		} else {
			r, size := utf8.DecodeRune(b[i:])
			space = unicode.IsSpace(r)
			i += size
		}
		if !space && !inField {
			n++
		}
		inField = !space
	}
	return n
}

var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

func (s *Server) generate(k kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.total.Add(1)
		bp := bodyPool.Get().(*[]byte)
		buf := bytes.NewBuffer((*bp)[:0])
		_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		body := buf.Bytes()
		defer func() {
			if cap(body) <= maxPooledBody {
				*bp = body[:0]
				bodyPool.Put(bp)
			}
		}()
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "could not read body: "+err.Error())
			return
		}
		s.record(r, body)
		var req request
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "malformed JSON: "+err.Error())
			return
		}
		f := s.takeFailure()
		if f.Status != 0 {
			if f.Status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, f.Status, "server_error", "mock failure "+strconv.Itoa(f.Status))
			return
		}
		ctx := r.Context()
		if f.Hang {
			<-ctx.Done()
			s.canceled.Add(1)
			return
		}
		model := req.Model
		if model == "" {
			model = s.cfg.Name
		}
		prompt := approxTokens(req.Prompt) + approxTokens(req.Input)
		for _, m := range req.Messages {
			prompt += approxTokens(m.Content) + 1
		}
		if k == kindEmbedding {
			t, ok := s.admit(gpumodel.Job{Prompt: prompt, Output: 1, Prefix: -1})
			if !ok {
				writeError(w, http.StatusServiceUnavailable, "server_error", "mock queue full")
				return
			}
			if _, ok := s.await(ctx, t, 1); !ok {
				s.canceled.Add(1)
				return
			}
			s.writeEmbeddings(w, &req, model, prompt)
			s.completed.Add(1)
			return
		}
		n := s.cfg.MaxTokens
		if req.MaxCompletionTokens != nil {
			n = *req.MaxCompletionTokens
		} else if req.MaxTokens != nil {
			n = *req.MaxTokens
		}
		n = max(0, min(n, maxGenerateTokens))
		id := fmt.Sprintf("cmpl-mock-%d", s.seq.Add(1))
		// The GPU always samples at least one token; a request for none
		// is answered with none once it has.
		t, ok := s.admit(gpumodel.Job{Prompt: prompt, Output: max(n, 1), Prefix: -1, Adapter: s.adapterOf(model)})
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "server_error", "mock queue full")
			return
		}
		if d := s.observeKV(&req); d > 0 && !s.sleep(ctx, d) { // kvevents.go: prefill of uncached blocks
			s.gpu.Abort(t)
			s.canceled.Add(1)
			return
		}
		var done bool
		if name := toolToCall(&req); k == kindChat && name != "" {
			includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !s.cfg.OmitUsage
			done = s.toolCall(ctx, w, req.Stream, id, model, name, prompt, includeUsage)
		} else if req.Stream {
			includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !s.cfg.OmitUsage
			done = s.stream(ctx, w, t, k, id, model, prompt, n, includeUsage, f.BreakAfter)
		} else {
			done = s.whole(ctx, w, t, k, id, model, prompt, n)
		}
		if done {
			s.completed.Add(1)
		} else {
			s.canceled.Add(1)
		}
	}
}

// admit submits a job to the GPU unless Queue requests already wait.
func (s *Server) admit(j gpumodel.Job) (*gpumodel.Ticket, bool) {
	if _, waiting, _ := s.gpu.Load(); waiting >= s.cfg.Queue {
		return nil, false
	}
	return s.gpu.Submit(j), true
}

// await waits until t's job has produced at least n tokens (or is
// complete) and returns how many it has; false if ctx ended first, and
// then the job is aborted.
func (s *Server) await(ctx context.Context, t *gpumodel.Ticket, n int) (int, bool) {
	for {
		got, done := s.gpu.Progress(t)
		if got >= n || done {
			return got, true
		}
		select {
		case <-t.C():
		case <-ctx.Done():
			s.gpu.Abort(t)
			return got, false
		}
	}
}

// sleep waits d at the GPU's current speed (control.go), or until ctx ends.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	d = s.scaled(d)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Text returns the deterministic completion of n tokens.
func Text(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(Words[i%len(Words)])
	}
	return b.String()
}

func (s *Server) whole(ctx context.Context, w http.ResponseWriter, t *gpumodel.Ticket, k kind, id, model string, prompt, n int) bool {
	if _, ok := s.await(ctx, t, max(n, 1)); !ok {
		return false
	}
	text := Text(n)
	resp := map[string]any{"id": id, "created": time.Now().Unix(), "model": model}
	finish := "length"
	if k == kindChat {
		resp["object"] = "chat.completion"
		resp["choices"] = []any{map[string]any{"index": 0, "finish_reason": finish,
			"message": map[string]any{"role": "assistant", "content": text}}}
	} else {
		resp["object"] = "text_completion"
		resp["choices"] = []any{map[string]any{"index": 0, "finish_reason": finish, "text": text}}
	}
	if !s.cfg.OmitUsage {
		resp["usage"] = Usage{PromptTokens: prompt, CompletionTokens: n, TotalTokens: prompt + n}
	}
	b, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(b)
	return err == nil
}

func (s *Server) stream(ctx context.Context, w http.ResponseWriter, t *gpumodel.Ticket, k kind, id, model string, prompt, n int, includeUsage bool, breakAfter int) bool {
	defer s.gpu.Abort(t) // a stream cut short frees its sequence
	have, ok := s.await(ctx, t, 1)
	if !ok {
		return false
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	created := time.Now().Unix()
	object := "text_completion"
	if k == kindChat {
		object = "chat.completion.chunk"
	}
	var buf []byte
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		buf = append(buf[:0], "data: "...)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(choice map[string]any) map[string]any {
		return map[string]any{"id": id, "object": object, "created": created, "model": model, "choices": []any{choice}}
	}
	if k == kindChat {
		if !send(chunk(map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": ""}, "finish_reason": nil})) {
			return false
		}
	}
	for i := 0; i < n; i++ {
		if i >= have {
			if have, ok = s.await(ctx, t, i+1); !ok {
				return false
			}
		}
		if breakAfter > 0 && i == breakAfter {
			// Cut the connection mid-stream, the way a crashed backend does.
			conn, _, err := rc.Hijack()
			if err != nil {
				panic(http.ErrAbortHandler)
			}
			_ = conn.Close()
			return false
		}
		word := Words[i%len(Words)]
		var c map[string]any
		if k == kindChat {
			c = chunk(map[string]any{"index": 0, "delta": map[string]any{"content": word}, "finish_reason": nil})
		} else {
			c = chunk(map[string]any{"index": 0, "text": word, "finish_reason": nil})
		}
		if !send(c) {
			return false
		}
	}
	last := map[string]any{"index": 0, "finish_reason": "length"}
	if k == kindChat {
		last["delta"] = map[string]any{}
	} else {
		last["text"] = ""
	}
	if !send(chunk(last)) {
		return false
	}
	if includeUsage {
		if !send(map[string]any{"id": id, "object": object, "created": created, "model": model, "choices": []any{},
			"usage": Usage{PromptTokens: prompt, CompletionTokens: n, TotalTokens: prompt + n}}) {
			return false
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return false
	}
	return rc.Flush() == nil
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	b, _ := json.Marshal(map[string]any{"object": "list", "data": []any{
		map[string]any{"id": s.cfg.Name, "object": "model", "created": 0, "owned_by": "mockllm"}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// metrics writes vLLM's gauge names in the Prometheus text format, from the
// GPU model (a GPU with fixed timings reports its batch's occupancy as
// KV-cache usage).
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	running, waiting, kv := s.gpu.Load()
	label := strconv.Quote(s.cfg.Name)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=%s} %d\n", label, running)
	fmt.Fprintf(w, "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=%s} %d\n", label, waiting)
	fmt.Fprintf(w, "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=%s} %g\n", label, kv)
	fmt.Fprintf(w, "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter\nvllm:request_success_total{model_name=%s} %d\n", label, s.completed.Load())
	s.writeLoRAInfo(w)
}

func (s *Server) debugRequests(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Requests())
}

func (s *Server) debugStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}
