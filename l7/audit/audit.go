// Package audit writes the gateway's JSON-lines audit log: one line per
// request with who, what model, where it went, tokens, cost, inspection
// verdicts and latency. Prompt text appears only when the policy enables it,
// and then already redacted by the caller.
package audit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Buffering: lines are written through a buffer flushed at least this often,
// so a busy gateway does not make one syscall per request.
const (
	bufferBytes   = 64 << 10
	flushInterval = 200 * time.Millisecond
	filePerm      = 0o600
	// maxKeptLineBytes: a line buffer grown by a huge record is dropped.
	maxKeptLineBytes = 64 << 10
)

// Record is one audit line.
type Record struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Tenant   string    `json:"tenant,omitempty"`
	Key      string    `json:"key,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Endpoint string    `json:"endpoint"`
	Model    string    `json:"model,omitempty"`
	Backend  string    `json:"backend,omitempty"`
	// Provider is the answering upstream's gen_ai.provider.name.
	Provider         string `json:"provider,omitempty"`
	Status           int    `json:"status"`
	Stream           bool   `json:"stream,omitempty"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	// UsageSource says where the completion count came from: "upstream"
	// (the backend's usage) or "counted" (the gateway's own count of the text
	// it streamed, when the backend gave none or the stream ended early).
	UsageSource string   `json:"usage_source,omitempty"`
	CostUSD     float64  `json:"cost_usd"`
	Verdicts    []string `json:"verdicts,omitempty"`
	Attempts    int      `json:"attempts,omitempty"`
	LatencyMS   float64  `json:"latency_ms"`
	TTFTMS      float64  `json:"ttft_ms,omitempty"`
	Error       string   `json:"error,omitempty"`
	Prompt      []string `json:"prompt,omitempty"`
	// Cache is "exact" or "semantic" for an answer from the response
	// cache; CachedTokens are the tokens that answer carries (billed only
	// when the policy bills hits).
	Cache        string `json:"cache,omitempty"`
	CachedTokens int64  `json:"cached_tokens,omitempty"`
}

// Logger appends records to a writer. It is safe for concurrent use.
type Logger struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	closer io.Closer
	line   []byte
	err    error
	stop   chan struct{}
	done   chan struct{}
}

// New logs to w; if w is an io.Closer, Close closes it.
func New(w io.Writer) *Logger {
	l := &Logger{bw: bufio.NewWriterSize(w, bufferBytes), stop: make(chan struct{}), done: make(chan struct{})}
	if c, ok := w.(io.Closer); ok {
		l.closer = c
	}
	go l.flushLoop()
	return l
}

// Open appends to the file at path, creating it with mode 0600.
func Open(path string) (*Logger, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return New(f), nil
}

func (l *Logger) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = l.Flush()
		case <-l.stop:
			return
		}
	}
}

// Log writes one record. The first write error is kept and returned by
// every later call.
func (l *Logger) Log(r *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.line = append(r.AppendJSON(l.line[:0]), '\n')
	if _, err := l.bw.Write(l.line); err != nil {
		l.err = fmt.Errorf("write audit record: %w", err)
	}
	if cap(l.line) > maxKeptLineBytes {
		l.line = nil
	}
	return l.err
}

// Flush writes buffered records out.
func (l *Logger) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if err := l.bw.Flush(); err != nil {
		l.err = fmt.Errorf("flush audit log: %w", err)
	}
	return l.err
}

// Close flushes and closes the underlying writer when it is a Closer.
func (l *Logger) Close() error {
	close(l.stop)
	<-l.done
	err := l.Flush()
	if l.closer != nil {
		if cerr := l.closer.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close audit log: %w", cerr)
		}
	}
	return err
}
