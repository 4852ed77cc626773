package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/bgp"
	"github.com/infergate/infergate/agent/xdpattach"
	"github.com/infergate/infergate/gpu/collector"
	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/l7/serve"
	"github.com/infergate/infergate/loader"
	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/policy/store"
)

// Defaults of the agent's command line.
const (
	DefaultStateDir    = "/var/lib/infergate"
	DefaultSocket      = api.DefaultSocket
	DefaultMetricsAddr = "127.0.0.1:9464"
	DefaultBPFFS       = "/sys/fs/bpf"
	DefaultPinDir      = "/sys/fs/bpf/infergate"
	// gatewayShutdownGrace lets open streams finish on SIGTERM.
	gatewayShutdownGrace = 30 * time.Second
	// loadReportCacheAge bounds how often a GPU host re-reads NVML and the
	// inference server's metrics, however often it is polled.
	loadReportCacheAge = 250 * time.Millisecond
	// drainFileName, in the state directory, marks a drained node.
	drainFileName = "drained"
)

// Config is everything `infergate agent` takes on its command line.
type Config struct {
	Role         string
	PolicyFile   string
	StateDir     string
	Socket       string
	MetricsAddr  string // "" disables
	BPFFS        string
	PinDir       string // "" disables pinning (tests)
	AllowGeneric bool
	Version      string

	Loader                       loader.Config
	EncapSourceV4, EncapSourceV6 netip.Prefix
	Resync                       time.Duration
	NeighbourWait                time.Duration

	// Gateway runs the L7 gateway; GatewayListen overrides the policy's
	// gateway.listen.
	Gateway       bool
	GatewayListen string
	// LoadReportAddr serves this GPU host's load report at /load ("" off).
	LoadReportAddr string
	// LoadReportTokenFile holds the bearer token of load reports: a GPU
	// host requires it on /load, a balancer's poller sends it ("" none).
	LoadReportTokenFile string
	// InferenceMetricsURL is the local inference server's Prometheus
	// endpoint, read into the load report ("" leaves it out).
	InferenceMetricsURL string
	// PollLoadReports polls the load reports of pools with loadReports on
	// (balancer).
	PollLoadReports bool
	// Source, when set, feeds desired state from outside the node (the
	// cluster) once the stored policy is back in force.
	Source Source

	Logger *slog.Logger
	// Ready, when set, is called once the socket is up.
	Ready func()

	// nvmlCollector replaces opening NVML (tests, over go-nvml's mock).
	nvmlCollector *collector.Collector
}

// Run runs the agent until ctx ends: mounts bpffs, loads (or adopts) the
// XDP objects, applies the stored or given policy, then serves the local
// API and metrics. The API socket appears only after the first successful
// reconcile, so its presence means ready. On return, XDP stays attached
// through its pinned links.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Role != RoleBalancer && cfg.Role != RoleGPUHost {
		return fmt.Errorf("--role %q: want balancer or gpu-host", cfg.Role)
	}
	if cfg.PinDir != "" {
		mounted, err := xdpattach.EnsureBPFFS(cfg.BPFFS, cfg.PinDir)
		if err != nil {
			return err
		}
		if mounted {
			log.Info("mounted bpffs", "path", cfg.BPFFS)
		}
	}
	var initial []byte
	if cfg.PolicyFile != "" {
		b, err := os.ReadFile(cfg.PolicyFile)
		if err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		initial = b
	}
	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()

	var (
		dp   Dataplane
		prog string
		xa   *xdpattach.Attacher
	)
	adopting := false
	if cfg.PinDir != "" {
		if ents, err := os.ReadDir(cfg.PinDir); err == nil && len(ents) > 0 {
			adopting = true
		}
	}
	switch cfg.Role {
	case RoleBalancer:
		cfg.Loader = preflight(ctx, cfg, initial, st, log)
		b, err := loader.LoadBalancer(cfg.Loader, cfg.PinDir)
		if err != nil {
			return err
		}
		defer b.Close()
		bdp := NewBalancerDataplane(b, cfg.Loader, cfg.PinDir)
		go bdp.ExpireLoop(ctx, log)
		dp = bdp
		prog = "balancer"
		xa = xdpattach.NewAttacher(b.Program(), prog, cfg.PinDir, cfg.AllowGeneric, log)
	case RoleGPUHost:
		d, err := loader.LoadDecap(loader.DecapConfig{}, cfg.PinDir)
		if err != nil {
			return err
		}
		defer d.Close()
		dp = &DecapDataplane{D: d}
		prog = "decap"
		xa = xdpattach.NewAttacher(d.Program(), prog, cfg.PinDir, cfg.AllowGeneric, log)
	}
	defer xa.Close()
	if adopting {
		log.Info("adopting pinned maps and links from a previous agent; state carries on", "pin_dir", cfg.PinDir)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// One load source serves both consumers of load reports: the Maglev
	// weights (thresholded, through the reconciler) and the L7 gateway's
	// per-request pick (unthresholded Current weights, prefix affinity).
	var loads *serve.Loads
	var observer *loadObserver
	var a *Agent
	if cfg.PollLoadReports {
		observer = newLoadObserver(http.DefaultTransport)
		client := &http.Client{Timeout: report.DefaultPollTimeout, Transport: observer}
		token, err := loadReportToken(cfg)
		if err != nil {
			return fmt.Errorf("--load-report-token-file: %w", err)
		}
		loads, err = serve.NewLoads(serve.LoadsConfig{Log: log, Client: client, Token: token, OnUpdate: func(u report.Update) {
			for name, wt := range u.Weights {
				a.SetLoad(name, wt.Weight, wt.Draining, nil)
			}
		}})
		if err != nil {
			return err
		}
	}

	var gwIface Gateway
	if cfg.Gateway {
		gw := newL7Gateway(serve.Options{Listen: cfg.GatewayListen, Registry: reg, Logger: log, Loads: loads,
			ShutdownGrace: gatewayShutdownGrace})
		gwIface = gw
		defer gw.shutdown()
	}

	// A balancer runs a BGP speaker; it starts sessions only for a policy
	// with spec.dataplane.bgp, and on return withdraws and closes them
	// (the XDP program keeps forwarding what still arrives).
	var speaker *bgp.Speaker
	if cfg.Role == RoleBalancer {
		speaker = bgp.New(log)
		defer speaker.Close()
	}
	a, err = New(Options{
		BGP: speaker, DrainFile: filepath.Join(cfg.StateDir, drainFileName),
		Role: cfg.Role, Version: cfg.Version, Dataplane: dp,
		Resolver: NetlinkResolver{NeighbourWait: cfg.NeighbourWait},
		Store:    FileStore{st}, Gateway: gwIface, Attacher: xa, Logger: log,
		HealthChecks: cfg.Role == RoleBalancer, Resync: cfg.Resync,
		EncapSourceV4: cfg.EncapSourceV4, EncapSourceV6: cfg.EncapSourceV6,
		OnApplied: func(c *policy.Compiled) {
			if loads == nil {
				return
			}
			var ts []report.Target
			if c != nil {
				ts = report.TargetsFromPolicy(c)
			}
			observer.setTargets(ts)
			// The gateway's apply aimed them already when there is one;
			// a balancer without L7 has only this.
			if err := loads.SetTargets(c); err != nil {
				log.Error("load report targets", "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	defer a.Close()
	if observer != nil {
		a.loadSource = observer.loads
	}
	if adopting {
		if err := a.Adopt(); err != nil {
			return fmt.Errorf("adopt pinned maps: %w", err)
		}
	}
	reg.MustRegister(NewCollector(a))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.Start(ctx, initial); err != nil {
		return err
	}
	if loads != nil {
		go loads.Run(ctx)
	}
	if cfg.Source != nil {
		go func() {
			if err := cfg.Source.Run(ctx, a.ApplyFromSource); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("desired-state source stopped; the data plane keeps what it runs", "err", err)
			}
		}()
	}

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errc <- ServeMetrics(ctx, ln, reg, log) }()
	}
	if cfg.Role == RoleGPUHost && cfg.LoadReportAddr != "" {
		if _, err := serveLoadReport(ctx, cfg, reg, log, &wg); err != nil {
			return err
		}
	}
	ln, err := ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); errc <- Serve(ctx, ln, a.Handler(), log) }()
	log.Info("agent ready", "role", cfg.Role, "socket", cfg.Socket, "metrics", cfg.MetricsAddr, "pin_dir", cfg.PinDir)
	if cfg.Ready != nil {
		cfg.Ready()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		cancel()
	}
	wg.Wait()
	log.Info("agent stopped; XDP programs stay attached through their pinned links, maps keep their state", "pin_dir", cfg.PinDir)
	return runErr
}

// preflight fills the runtime fields of the loader's configuration
// (aggregation, IPIP source) from the policy about to be applied, so that
// loading, which writes them, does not leave adopted flows without an
// encapsulation source until the first reconcile.
func preflight(ctx context.Context, cfg Config, initial []byte, st *store.Store, log *slog.Logger) loader.Config {
	lc := cfg.Loader
	lc.EncapSourceV4, lc.EncapSourceV6 = cfg.EncapSourceV4, cfg.EncapSourceV6
	doc := initial
	if doc != nil {
		if apply, _, err := startupFile(doc, FileStore{st}); err != nil || !apply {
			doc = nil // Start restores the stored policy and says why
		}
	}
	if doc == nil {
		if _, b, err := st.Current(); err == nil {
			doc = b
		}
	}
	if doc == nil {
		return lc
	}
	pd, err := policy.Decode(bytes.NewReader(doc))
	if err != nil {
		return lc
	}
	c, err := policy.Compile(pd)
	if err != nil {
		return lc
	}
	lc.AggregateV4, lc.AggregateV6 = c.Dataplane.AggregateV4, c.Dataplane.AggregateV6
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	d, err := Build(ctx, c, BuildOptions{Role: RoleBalancer, Resolver: NetlinkResolver{NeighbourWait: cfg.NeighbourWait}})
	if err != nil {
		log.Debug("preflight build failed; the apply will say why", "err", err)
		return lc
	}
	if !lc.EncapSourceV4.IsValid() && d.SourceV4.IsValid() {
		lc.EncapSourceV4 = netip.PrefixFrom(d.SourceV4, 32)
	}
	if !lc.EncapSourceV6.IsValid() && d.SourceV6.IsValid() {
		lc.EncapSourceV6 = netip.PrefixFrom(d.SourceV6, 128)
	}
	return lc
}

// serveLoadReport serves this GPU host's load report (NVML, when the
// library is there, and the inference server's metrics) at /load on
// --load-report-addr and as gauges, and runs the NVML Xid watcher, which
// marks a GPU with a fatal Xid unhealthy in that report, until ctx ends.
// Both run under wg. It returns the address it serves on.
func serveLoadReport(ctx context.Context, cfg Config, reg prometheus.Registerer, log *slog.Logger, wg *sync.WaitGroup) (net.Addr, error) {
	host, _ := os.Hostname()
	h, err := report.NewHost(report.HostConfig{Host: host, MetricsURL: cfg.InferenceMetricsURL, CacheAge: loadReportCacheAge,
		Log: log, Collector: cfg.nvmlCollector})
	if err != nil {
		return nil, fmt.Errorf("--inference-metrics-url: %w", err)
	}
	if err := h.Register(reg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.LoadReportAddr)
	if err != nil {
		return nil, fmt.Errorf("--load-report-addr: %w", err)
	}
	lh, err := loadReportHandler(cfg, h.Handler(), ln.Addr(), log)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("--load-report-token-file: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/load", lh)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := h.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("NVML Xid watcher", "err", err)
		}
	}()
	go func() { defer wg.Done(); _ = Serve(ctx, ln, mux, log) }()
	log.Info("serving the GPU load report; watching NVML for Xid errors", "addr", ln.Addr().String(), "path", "/load")
	return ln.Addr(), nil
}

// l7Gateway is the agent's L7 side: the composition root l7/serve, which
// starts serving with the first policy applied and applies later ones all
// or nothing.
type l7Gateway struct{ *serve.Server }

func newL7Gateway(o serve.Options) *l7Gateway { return &l7Gateway{serve.New(o)} }

var (
	_ GatewayBackendStats = (*l7Gateway)(nil)
	_ GatewayServing      = (*l7Gateway)(nil)
	_ GatewayReinstater   = (*l7Gateway)(nil)
)

// ServeErr reports why the gateway's listener stopped (nil before the
// first policy started it, and while it serves).
func (l *l7Gateway) ServeErr() error { return l.Server.Err() }

// BackendL7 reports the running gateway's per-backend counters (nil before
// the first policy has started it).
func (l *l7Gateway) BackendL7() map[string]api.BackendL7 {
	stats := l.BackendStats()
	if stats == nil {
		return nil
	}
	out := make(map[string]api.BackendL7, len(stats))
	for label, s := range stats {
		out[label] = api.BackendL7{Requests: s.Requests, Errors: s.Errors, PromptTokens: s.PromptTokens,
			CompletionTokens: s.CompletionTokens, TTFTSecondsSum: s.TTFTSum.Seconds(), TTFTCount: s.TTFTCount}
	}
	return out
}

func (l *l7Gateway) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), gatewayShutdownGrace)
	defer cancel()
	_ = l.Shutdown(ctx)
}
