package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Defaults and bounds.
const (
	// DefaultTimeout bounds one scrape; a server too busy to answer its
	// metrics endpoint in this time is itself a load signal.
	DefaultTimeout = 2 * time.Second
	// DefaultMaxBody bounds the payload read. A vLLM endpoint with all
	// histograms is around 100 KiB; Triton with many models a few MiB.
	DefaultMaxBody = 8 << 20
	// maxBodyLimit caps a configured MaxBody.
	maxBodyLimit = 64 << 20
	// acceptText asks for the classic text format that TextParser reads,
	// not OpenMetrics or protobuf.
	acceptText = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
)

// ErrBodyTooLarge: the payload exceeded MaxBody.
var ErrBodyTooLarge = errors.New("scrape: metrics payload too large")

// Config of a Scraper.
type Config struct {
	// URL of the inference server's metrics, e.g. http://127.0.0.1:8000/metrics.
	URL string
	// Kind of server; Auto detects it on every scrape.
	Kind Kind
	// Timeout per scrape; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxBody in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// Client to use; nil means a dedicated client with Timeout.
	Client *http.Client
}

// Scraper scrapes one endpoint. It keeps the previous scrape's cumulative
// queue-time counters to turn them into a mean queue time per interval, so
// use one Scraper per endpoint. It is safe for concurrent use.
type Scraper struct {
	cfg    Config
	client *http.Client

	mu        sync.Mutex
	prev      Metrics
	prevValid bool
}

// New checks cfg and returns a Scraper.
func New(cfg Config) (*Scraper, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("scrape: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scrape: url %q: want http or https", cfg.URL)
	}
	if _, err := ParseKind(string(cfg.Kind)); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBody > maxBodyLimit {
		return nil, fmt.Errorf("scrape: max body %d above %d", cfg.MaxBody, maxBodyLimit)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Scraper{cfg: cfg, client: client}, nil
}

// Scrape fetches and parses the endpoint once.
func (s *Scraper) Scrape(ctx context.Context) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return Metrics{}, fmt.Errorf("scrape: %w", err)
	}
	req.Header.Set("Accept", acceptText)
	resp, err := s.client.Do(req)
	if err != nil {
		return Metrics{}, fmt.Errorf("scrape %s: %w", s.cfg.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		return Metrics{}, fmt.Errorf("scrape %s: status %s", s.cfg.URL, resp.Status)
	}
	lr := &limitedReader{r: resp.Body, left: s.cfg.MaxBody}
	m, err := Parse(lr, s.cfg.Kind)
	if lr.exceeded {
		return Metrics{}, fmt.Errorf("scrape %s: %w (limit %d bytes)", s.cfg.URL, ErrBodyTooLarge, s.cfg.MaxBody)
	}
	if err != nil {
		return Metrics{}, fmt.Errorf("scrape %s: %w", s.cfg.URL, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prevValid && m.hasQueueCounters && s.prev.hasQueueCounters && s.prev.Kind == m.Kind {
		dSum, dCount := m.queueSum-s.prev.queueSum, m.queueCount-s.prev.queueCount
		// A counter that went backwards was reset (server restart):
		// no mean for this interval.
		if dCount > 0 && dSum >= 0 {
			m.QueueSeconds, m.HasQueueTime = dSum/dCount, true
		}
	}
	s.prev, s.prevValid = m, true
	return m, nil
}

// limitedReader fails the read once more than left bytes arrive, so an
// oversized payload is an error rather than a silently truncated parse.
type limitedReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe one byte: exactly the limit is fine, more is not.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.exceeded = true
			return 0, ErrBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
