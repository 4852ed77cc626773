package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infergate/infergate/gpu/collector"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/gpu/scrape"
)

// HostConfig configures a GPU host's load reporting.
type HostConfig struct {
	// Host names this host in its reports.
	Host string
	// MetricsURL is the local inference server's Prometheus endpoint;
	// empty means no server metrics.
	MetricsURL string
	// ServerKind is vllm, tgi, triton, sglang, or empty to detect.
	ServerKind string
	// ScrapeTimeout bounds one scrape; 0 takes scrape.DefaultTimeout.
	ScrapeTimeout time.Duration
	// Capacity overrides the estimate from the GPU models; 0 keeps it.
	Capacity float64
	// NoNVML skips the NVML collector (a host known to have no GPU, or a
	// simulated one).
	NoNVML bool
	// Collector, when set, is used instead of opening NVML (tests hand in
	// one over go-nvml's mock). Run closes it.
	Collector *collector.Collector
	// CacheAge bounds how often NVML and the server are read; 0 takes
	// DefaultCacheAge.
	CacheAge time.Duration
	Log      *slog.Logger
}

// Host is a GPU host's load reporting: NVML and the inference server's
// metrics combined, served as JSON and Prometheus gauges.
type Host struct {
	src       *Cached
	collector *collector.Collector
	cfg       HostConfig
}

// NewHost builds the reporting for one host. A missing NVML library is not
// an error (the collector says so once and the report carries what the
// server's metrics say); a malformed configuration is.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	hs := &HostSource{Host: cfg.Host, Capacity: cfg.Capacity}
	h := &Host{cfg: cfg}
	if cfg.MetricsURL != "" {
		kind, err := scrape.ParseKind(cfg.ServerKind)
		if err != nil {
			return nil, err
		}
		sc, err := scrape.New(scrape.Config{URL: cfg.MetricsURL, Kind: kind, Timeout: cfg.ScrapeTimeout})
		if err != nil {
			return nil, err
		}
		hs.Scraper = sc
	}
	switch {
	case cfg.Collector != nil:
		h.collector = cfg.Collector
		hs.Collector = h.collector
	case !cfg.NoNVML:
		h.collector = collector.New(cfg.Log, collector.Config{})
		hs.Collector = h.collector
	}
	h.src = NewCached(hs, cfg.CacheAge)
	return h, nil
}

// Source returns the host's (cached) report source.
func (h *Host) Source() Source { return h.src }

// Handler serves the JSON report.
func (h *Host) Handler() http.Handler { return Handler(h.src) }

// Register adds the host's gauges to reg.
func (h *Host) Register(reg prometheus.Registerer) error {
	ex, err := NewExporter(h.src, score.Config{})
	if err != nil {
		return err
	}
	if err := reg.Register(ex); err != nil {
		return fmt.Errorf("register gpu gauges: %w", err)
	}
	return nil
}

// Run watches NVML for Xid events until ctx ends (without NVML it only
// waits), then shuts NVML down. It returns ctx's error.
func (h *Host) Run(ctx context.Context) error {
	if h.collector == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	err := h.collector.Watch(ctx)
	if cerr := h.collector.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}
