// Package sim is a simulated GPU running an inference server: a batch with
// a bounded number of sequences, a KV cache counted in tokens, a FIFO wait
// queue, and a speed model for prefill and decode. It reports its load as a
// score.Report (so it is a report.Source) and writes vLLM-format metrics, so
// a mock inference server embedding it reports through the same path as a
// real GPU host: metrics, scraper, load report, poller, weights.
package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/infergate/infergate/gpu/score"
)

// Defaults. The speed model's figures are for one H100 SXM serving an
// 8B-parameter model in bf16 (Speed 1): decoding reads ~16 GB of weights
// per step at ~3 TB/s effective, about 6 ms, plus KV reads that grow with
// the batch; prefill runs at roughly 10k tokens/s per request.
const (
	DefaultMaxBatch      = 64
	DefaultKVTokens      = 262144 // ~27k vLLM blocks of 16 at 0.9 memory utilisation, rounded
	DefaultMaxQueue      = 4096
	DefaultDecodeStep    = 8 * time.Millisecond
	DefaultDecodePerSeq  = 150 * time.Microsecond
	DefaultPrefillPerSec = 10000.0
	// Upper bounds on configuration and requests.
	maxBatchLimit  = 4096
	maxKVTokens    = 1 << 26
	maxQueueLimit  = 1 << 20
	maxSeqTokens   = 1 << 22
	minSpeed       = 1e-3
	maxSpeed       = 1e3
	maxLabelLength = 256
)

// Errors from Admit.
var (
	ErrQueueFull = errors.New("sim: queue full")
	ErrTooLarge  = errors.New("sim: request larger than the KV cache")
)

// Config of a simulated GPU. Zero fields take defaults.
type Config struct {
	// Name is the GPU model, e.g. "NVIDIA H100 80GB HBM3"; reported, and
	// used for Speed when Speed is 0.
	Name string
	// Speed is relative throughput (1 = H100 SXM). 0 takes
	// score.CapacityForModel(Name), or 1 when the model is unknown.
	Speed    float64
	MaxBatch int
	KVTokens int
	MaxQueue int
	// DecodeStep and DecodePerSeq give one decode iteration's time at
	// Speed 1: DecodeStep + DecodePerSeq × running sequences.
	DecodeStep   time.Duration
	DecodePerSeq time.Duration
	// PrefillPerSec is prompt tokens per second at Speed 1.
	PrefillPerSec float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	c.Speed = cmp.Or(c.Speed, score.CapacityForModel(c.Name), 1)
	c.MaxBatch = cmp.Or(c.MaxBatch, DefaultMaxBatch)
	c.KVTokens = cmp.Or(c.KVTokens, DefaultKVTokens)
	c.MaxQueue = cmp.Or(c.MaxQueue, DefaultMaxQueue)
	c.DecodeStep = cmp.Or(c.DecodeStep, DefaultDecodeStep)
	c.DecodePerSeq = cmp.Or(c.DecodePerSeq, DefaultDecodePerSeq)
	c.PrefillPerSec = cmp.Or(c.PrefillPerSec, DefaultPrefillPerSec)
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case !(c.Speed >= minSpeed && c.Speed <= maxSpeed):
		return c, fmt.Errorf("sim: speed %v outside [%v,%v]", c.Speed, minSpeed, maxSpeed)
	case c.MaxBatch < 1 || c.MaxBatch > maxBatchLimit:
		return c, fmt.Errorf("sim: max batch %d outside [1,%d]", c.MaxBatch, maxBatchLimit)
	case c.KVTokens < 1 || c.KVTokens > maxKVTokens:
		return c, fmt.Errorf("sim: KV tokens %d outside [1,%d]", c.KVTokens, maxKVTokens)
	case c.MaxQueue < 0 || c.MaxQueue > maxQueueLimit:
		return c, fmt.Errorf("sim: max queue %d outside [0,%d]", c.MaxQueue, maxQueueLimit)
	case c.DecodeStep < 0 || c.DecodePerSeq < 0:
		return c, errors.New("sim: negative decode time")
	case !(c.PrefillPerSec > 0) || math.IsInf(c.PrefillPerSec, 0):
		return c, fmt.Errorf("sim: prefill rate %v not positive", c.PrefillPerSec)
	case len(c.Name) > maxLabelLength:
		return c, errors.New("sim: name too long")
	}
	return c, nil
}

// waiter is a request in the FIFO queue.
type waiter struct {
	reserve  int
	admitted chan struct{}
	done     bool // admitted (under GPU.mu)
}

// GPU is one simulated GPU. It is safe for concurrent use.
type GPU struct {
	cfg Config

	mu       sync.Mutex
	queue    []*waiter
	running  int
	reserved int // KV tokens promised to running sequences
	used     int // KV tokens holding prompt and generated tokens
	healthy  bool
	reason   string
}

// New returns an idle, healthy GPU.
func New(cfg Config) (*GPU, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &GPU{cfg: c, healthy: true}, nil
}

// Config returns the configuration, defaults filled.
func (g *GPU) Config() Config { return g.cfg }

// Seq is an admitted sequence holding a batch slot and KV reservation.
type Seq struct {
	g         *GPU
	prompt    int
	reserve   int
	generated int
	released  bool
}

// Admit queues a request and waits, first come first served, for a batch
// slot and KV-cache room for its prompt plus maxOutput tokens (reserving
// the whole sequence up front, as TGI does, so a sequence is never
// preempted). It fails at once with ErrQueueFull or ErrTooLarge, or with
// ctx's error if ctx ends while waiting.
func (g *GPU) Admit(ctx context.Context, promptTokens, maxOutput int) (*Seq, error) {
	if promptTokens < 0 || maxOutput < 0 || promptTokens > maxSeqTokens || maxOutput > maxSeqTokens {
		return nil, fmt.Errorf("sim: token counts %d+%d out of range", promptTokens, maxOutput)
	}
	reserve := promptTokens + maxOutput
	if reserve > g.cfg.KVTokens {
		return nil, fmt.Errorf("%w: %d tokens, cache holds %d", ErrTooLarge, reserve, g.cfg.KVTokens)
	}
	g.mu.Lock()
	if len(g.queue) == 0 && g.fits(reserve) {
		g.start(promptTokens, reserve)
		g.mu.Unlock()
		return &Seq{g: g, prompt: promptTokens, reserve: reserve}, nil
	}
	if len(g.queue) >= g.cfg.MaxQueue {
		g.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := &waiter{reserve: reserve, admitted: make(chan struct{})}
	g.queue = append(g.queue, w)
	g.mu.Unlock()

	select {
	case <-w.admitted:
	case <-ctx.Done():
		g.mu.Lock()
		if !w.done {
			g.removeWaiter(w)
			// The head may have changed: later requests may fit now.
			g.admitWaiting()
			g.mu.Unlock()
			return nil, fmt.Errorf("sim: waiting for a batch slot: %w", ctx.Err())
		}
		g.mu.Unlock()
		// Admitted just as ctx ended: keep the slot; the caller will
		// notice ctx on its next step and release it.
	}
	// start ran in admitWaiting; account the prompt here.
	g.mu.Lock()
	g.used += promptTokens
	g.mu.Unlock()
	return &Seq{g: g, prompt: promptTokens, reserve: reserve}, nil
}

// fits reports whether a sequence reserving n tokens can start now.
func (g *GPU) fits(n int) bool {
	return g.running < g.cfg.MaxBatch && g.reserved+n <= g.cfg.KVTokens
}

// start accounts a sequence that begins immediately.
func (g *GPU) start(prompt, reserve int) {
	g.running++
	g.reserved += reserve
	g.used += prompt
}

// admitWaiting starts queued requests from the head while they fit.
// Prompt tokens are accounted by the admitted goroutine.
func (g *GPU) admitWaiting() {
	for len(g.queue) > 0 && g.fits(g.queue[0].reserve) {
		w := g.queue[0]
		g.queue = g.queue[1:]
		g.running++
		g.reserved += w.reserve
		w.done = true
		close(w.admitted)
	}
}

func (g *GPU) removeWaiter(w *waiter) {
	for i, x := range g.queue {
		if x == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return
		}
	}
}

// PrefillTime is how long processing the prompt takes.
func (s *Seq) PrefillTime() time.Duration {
	return time.Duration(float64(s.prompt) / (s.g.cfg.PrefillPerSec * s.g.cfg.Speed) * float64(time.Second))
}

// TokenInterval is the time of one decode step at the current batch size.
func (s *Seq) TokenInterval() time.Duration { return s.g.TokenInterval() }

// TokenInterval is the time of one decode step at the current batch size.
func (g *GPU) TokenInterval() time.Duration {
	g.mu.Lock()
	running := g.running
	g.mu.Unlock()
	step := g.cfg.DecodeStep + time.Duration(running)*g.cfg.DecodePerSeq
	return time.Duration(float64(step) / g.cfg.Speed)
}

// Token records one generated token. Tokens beyond the reservation are not
// counted: the reservation is the sequence's maximum.
func (s *Seq) Token() {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	if s.released || s.prompt+s.generated >= s.reserve {
		return
	}
	s.generated++
	s.g.used++
}

// Generated returns the tokens recorded so far.
func (s *Seq) Generated() int {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.generated
}

// Done frees the sequence's slot and KV cache and admits waiting requests.
// It is safe to call more than once.
func (s *Seq) Done() {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	g.running--
	g.reserved -= s.reserve
	g.used -= s.prompt + s.generated
	g.admitWaiting()
}

// Generate runs a whole request: admission, prefill, then maxOutput decode
// steps, calling onToken (if not nil) after each token with its index. It
// stops early with ctx's error or onToken's. It returns the time to first
// token measured from the call.
func (g *GPU) Generate(ctx context.Context, promptTokens, maxOutput int, onToken func(i int) error) (time.Duration, error) {
	start := g.cfg.Now()
	seq, err := g.Admit(ctx, promptTokens, maxOutput)
	if err != nil {
		return 0, err
	}
	defer seq.Done()
	if err := sleep(ctx, seq.PrefillTime()); err != nil {
		return 0, err
	}
	var ttft time.Duration
	for i := range maxOutput {
		if i > 0 {
			if err := sleep(ctx, seq.TokenInterval()); err != nil {
				return ttft, err
			}
		}
		seq.Token()
		if i == 0 {
			ttft = g.cfg.Now().Sub(start)
		}
		if onToken != nil {
			if err := onToken(i); err != nil {
				return ttft, err
			}
		}
	}
	return ttft, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SetHealthy marks the GPU healthy or not (a simulated Xid); an unhealthy
// GPU's report drains its host.
func (g *GPU) SetHealthy(ok bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.healthy, g.reason = ok, reason
	if ok {
		g.reason = ""
	}
}

// Stats is the GPU's state now.
type Stats struct {
	Running, Waiting     int
	KVUsed, KVReserved   int
	KVTokens             int
	Healthy              bool
	Reason               string
	KVUsage, Reservation float64
}

// Stats returns the current state.
func (g *GPU) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{
		Running: g.running, Waiting: len(g.queue),
		KVUsed: g.used, KVReserved: g.reserved, KVTokens: g.cfg.KVTokens,
		Healthy: g.healthy, Reason: g.reason,
		KVUsage:     float64(g.used) / float64(g.cfg.KVTokens),
		Reservation: float64(g.reserved) / float64(g.cfg.KVTokens),
	}
}

// Report is the GPU's load report: KV usage, running and waiting, its
// speed as capacity, and health. It never fails; ctx is for the interface.
func (g *GPU) Report(ctx context.Context) (score.Report, error) {
	s := g.Stats()
	return score.Report{
		Time:            g.cfg.Now(),
		Healthy:         s.Healthy,
		Reason:          s.Reason,
		Signals:         score.HasKVCache | score.HasRunning | score.HasWaiting,
		KVCacheUsage:    s.KVUsage,
		RequestsRunning: float64(s.Running),
		RequestsWaiting: float64(s.Waiting),
		Capacity:        g.cfg.Speed,
		GPUModel:        g.cfg.Name,
		GPUs:            1,
	}, nil
}

// WriteMetrics writes the GPU's state in vLLM's Prometheus text format
// (V1 names plus the deprecated KV gauge), labelled with model, so a mock
// server's /metrics can be read by the real scraper.
func (g *GPU) WriteMetrics(w io.Writer, model string) error {
	s := g.Stats()
	label := `{model_name="` + labelEscaper.Replace(truncate(model)) + `"}`
	_, err := fmt.Fprintf(w, `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running%[1]s %[2]d
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting%[1]s %[3]d
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc%[1]s %[4]s
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc%[1]s %[4]s
`, label, s.Running, s.Waiting, strconv.FormatFloat(s.KVUsage, 'g', -1, 64))
	if err != nil {
		return fmt.Errorf("sim: write metrics: %w", err)
	}
	return nil
}

// labelEscaper escapes a label value as the text format requires (only
// backslash, double quote and newline).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func truncate(s string) string {
	if len(s) > maxLabelLength {
		return s[:maxLabelLength]
	}
	return s
}
