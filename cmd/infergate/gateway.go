package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/infergate/infergate/gpu/pick"
	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/internal/httpserve"
	"github.com/infergate/infergate/l7/gateway"
	"github.com/infergate/infergate/l7/route"
	"github.com/infergate/infergate/policy"
)

const (
	defaultGatewayListen = "127.0.0.1:8080"
	gatewayShutdownGrace = 30 * time.Second
	// maxKeysFileEntries bounds --keys-file.
	maxKeysFileEntries = 2_000_000
	maxKeysFileLine    = 512
	// The gateway's live heap is small and its garbage per request high:
	// a larger GC target trades some memory for CPU, and the soft memory
	// limit pulls collection forward again before RSS grows large. Both
	// apply only when GOGC / GOMEMLIMIT are not set.
	gatewayGCPercent   = 200
	gatewayMemoryLimit = 192 << 20
)

func newGatewayCmd() *cobra.Command {
	var configPath, listen, redisAddr, metricsAddr, keysFile, loadReportTokenFile string
	var loadReports bool
	cmd := &cobra.Command{
		Use:   "gateway --config policy.yaml",
		Short: "Run the L7 gateway on its own (unprivileged)",
		Long: `Run the OpenAI-compatible L7 gateway from a policy document: API keys and
JWT auth, token counting, prompt inspection, tenant limits and model routing.
Pools with loadReports on are steered by their backends' GPU load reports
(polled from each backend's loadReportURL) and by prompt-prefix affinity;
--load-reports=false turns that off (power of two choices on in-flight
requests, as for every other pool).
SIGHUP reloads the policy (in-flight requests finish on the old one);
SIGINT/SIGTERM stop taking requests and finish open streams.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return withCode(exitUsage, errors.New("--config is required"))
			}
			load := func() (*policy.Compiled, error) {
				c, err := loadGatewayPolicy(configPath, keysFile)
				if err != nil {
					return nil, withCode(exitInvalid, err)
				}
				if redisAddr != "" {
					c.Gateway.LimitStore.Redis = redisAddr
				}
				return c, nil
			}
			c, err := load()
			if err != nil {
				return err
			}
			addr := listen
			if addr == "" {
				addr = c.Gateway.Listen
			}
			if addr == "" {
				addr = defaultGatewayListen
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(gatewayGCPercent)
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(gatewayMemoryLimit)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			var loadReportToken string
			if loadReportTokenFile != "" {
				if loadReportToken, err = report.ReadTokenFile(loadReportTokenFile); err != nil {
					return withCode(exitUsage, fmt.Errorf("--load-report-token-file: %w", err))
				}
			}
			sg, err := newStandaloneGateway(c, standaloneOptions{LoadReports: loadReports, LoadReportToken: loadReportToken, Registry: reg, Logger: log})
			if err != nil {
				return err
			}
			g := sg.g
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen %s: %w", addr, err)
			}
			gl, err := gateway.NewListener(c, g.Handler(), log)
			if err != nil {
				_ = ln.Close()
				return withCode(exitInvalid, err)
			}
			defer gl.Close()
			srv := gl.Server
			var msrv *http.Server
			if metricsAddr != "" {
				mln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("listen %s: %w", metricsAddr, err)
				}
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				msrv = gateway.NewServer(metricsAddr, mux)
				go func() { _ = msrv.Serve(mln) }()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			pctx, pcancel := context.WithCancel(ctx)
			polling := make(chan struct{})
			go func() {
				defer close(polling)
				sg.runLoadReports(pctx)
			}()
			defer func() { pcancel(); <-polling }()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					c, err := load()
					if err == nil {
						err = gl.ApplyTLS(c)
					}
					if err == nil {
						err = sg.Apply(c)
					}
					if err != nil {
						log.Error("reload policy", "err", err)
						continue
					}
					log.Info("policy reloaded", "name", c.Name, "version", c.Version)
				}
			}()
			// The server's shutdown and the gateway's share one grace
			// period, counted from the signal.
			graceEnds := make(chan time.Time, 1)
			context.AfterFunc(ctx, func() { graceEnds <- time.Now().Add(gatewayShutdownGrace) })
			log.Info("gateway listening", "addr", ln.Addr().String(), "policy", c.Name, "version", c.Version)
			err = httpserve.Run(ctx, srv, ln, gatewayShutdownGrace)
			if ctx.Err() == nil {
				// Serving failed before any signal.
				if err == nil {
					err = http.ErrServerClosed
				}
				return fmt.Errorf("serve: %w", err)
			}
			sctx, cancel := context.WithDeadline(context.Background(), <-graceEnds)
			defer cancel()
			err = errors.Join(err, g.Shutdown(sctx))
			if msrv != nil {
				_ = msrv.Close()
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "policy document (YAML)")
	f.StringVar(&listen, "listen", "", "address to serve on (default: the policy's gateway.listen, else "+defaultGatewayListen+")")
	f.StringVar(&redisAddr, "redis", "", "redis-server address for limits shared by replicas (overrides the policy)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "address for Prometheus /metrics (off when empty)")
	f.BoolVar(&loadReports, "load-reports", true, "steer pools with loadReports on by their backends' GPU load reports and prompt-prefix affinity")
	f.StringVar(&loadReportTokenFile, "load-report-token-file", "", "bearer token sent when polling GPU hosts' load reports (their --load-report-token-file)")
	f.StringVar(&keysFile, "keys-file", "", "extra API keys, one per line: <name> <tenant> sha256:<hex> (for key sets too large for the policy document)")
	return cmd
}

// standaloneOptions configures newStandaloneGateway.
type standaloneOptions struct {
	// LoadReports polls the load reports of pools with loadReports on and
	// picks their backends by GPU load (--load-reports).
	LoadReports bool
	// PollInterval between load report rounds (0: report.DefaultPollInterval).
	PollInterval time.Duration
	// LoadReportToken is sent as a bearer token with every poll.
	LoadReportToken string
	Registry        prometheus.Registerer
	Logger          *slog.Logger
}

// standaloneGateway is the L7 gateway of "infergate gateway" with, when
// the policy asks for it, the load report poller that feeds its picker:
// the same weighter and picker the agent wires into its embedded gateway,
// without the Maglev side.
type standaloneGateway struct {
	g           *gateway.Gateway
	log         *slog.Logger
	loadReports bool // --load-reports
	// poller and picker are nil when load reports are off, or when the
	// first policy had no pool with loadReports on: the picker is fixed
	// when the gateway is built, and without one every request skips
	// assembling its prompt for prefix affinity.
	poller *report.Poller
	picker *poolPicker
}

func newStandaloneGateway(c *policy.Compiled, o standaloneOptions) (*standaloneGateway, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &standaloneGateway{log: o.Logger, loadReports: o.LoadReports}
	opts := gateway.Options{Registry: o.Registry, Logger: o.Logger}
	if o.LoadReports && usesLoadReports(c) {
		w, err := score.NewWeighter(score.Config{})
		if err != nil {
			return nil, fmt.Errorf("load reports: %w", err)
		}
		pk, err := pick.New(pick.Config{Weights: w.Current})
		if err != nil {
			return nil, fmt.Errorf("load reports: %w", err)
		}
		if s.poller, err = report.NewPoller(w, report.PollerConfig{Interval: o.PollInterval, Log: o.Logger, Token: o.LoadReportToken}); err != nil {
			return nil, fmt.Errorf("load reports: %w", err)
		}
		s.picker = &poolPicker{inner: pk}
		if err := s.setTargets(c); err != nil {
			return nil, err
		}
		opts.Picker = s.picker
	}
	g, err := gateway.New(c, opts)
	if err != nil {
		return nil, err
	}
	s.g = g
	return s, nil
}

// Apply switches to a new policy and re-aims the load report poller.
func (s *standaloneGateway) Apply(c *policy.Compiled) error {
	if err := s.g.Apply(c); err != nil {
		return err
	}
	if s.poller == nil {
		if s.loadReports && usesLoadReports(c) {
			s.log.Warn("policy turns on loadReports: restart the gateway to steer by GPU load")
		}
		return nil
	}
	return s.setTargets(c)
}

func (s *standaloneGateway) setTargets(c *policy.Compiled) error {
	ts := report.TargetsFromPolicy(c)
	if err := s.poller.SetTargets(ts); err != nil {
		return fmt.Errorf("load report targets: %w", err)
	}
	s.picker.setPools(c)
	s.log.Info("polling GPU load reports", "backends", len(ts))
	return nil
}

// runLoadReports polls load reports until ctx ends (at once when off).
func (s *standaloneGateway) runLoadReports(ctx context.Context) {
	if s.poller != nil {
		_ = s.poller.Run(ctx)
	}
}

func usesLoadReports(c *policy.Compiled) bool {
	for _, p := range c.Pools {
		if p.LoadReports {
			return true
		}
	}
	return false
}

// poolPicker applies the GPU-load picker to pools with loadReports on
// only; other pools keep the router's power of two choices, as they would
// without load reports.
type poolPicker struct {
	inner *pick.Picker
	pools atomic.Pointer[map[string]bool]
}

var _ route.PrefixPicker = (*poolPicker)(nil)

func (p *poolPicker) setPools(c *policy.Compiled) {
	m := map[string]bool{}
	for _, pl := range c.Pools {
		if pl.LoadReports {
			m[pl.Name] = true
		}
	}
	p.pools.Store(&m)
}

func (p *poolPicker) steers(pool string) bool {
	m := p.pools.Load()
	return m != nil && (*m)[pool]
}

func (p *poolPicker) Pick(pool string, bs []*route.Backend) int {
	if !p.steers(pool) {
		return -1
	}
	return p.inner.Pick(pool, bs)
}

func (p *poolPicker) PickPrefix(pool string, bs []*route.Backend, prompt []byte) int {
	if !p.steers(pool) {
		return -1
	}
	return p.inner.PickPrefix(pool, bs, prompt)
}

func loadGatewayPolicy(path, keysFile string) (*policy.Compiled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open policy: %w", err)
	}
	defer f.Close()
	_, c, err := policy.Load(f)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if keysFile != "" {
		if err := addKeysFile(c, keysFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// addKeysFile appends API keys listed in a file to the compiled policy.
func addKeysFile(c *policy.Compiled, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open keys file: %w", err)
	}
	defer f.Close()
	tenants := make(map[string]int, len(c.Gateway.Tenants))
	for i, t := range c.Gateway.Tenants {
		tenants[t.Name] = i
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, maxKeysFileLine), maxKeysFileLine)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 3 {
			return fmt.Errorf("keys file line %d: want <name> <tenant> sha256:<hex>", line)
		}
		ti, ok := tenants[fields[1]]
		if !ok {
			return fmt.Errorf("keys file line %d: unknown tenant %q", line, fields[1])
		}
		hexHash, ok := strings.CutPrefix(fields[2], "sha256:")
		var k policy.CompiledKey
		if n, err := hex.Decode(k.Hash[:], []byte(hexHash)); !ok || err != nil || n != len(k.Hash) || len(hexHash) != 2*len(k.Hash) {
			return fmt.Errorf("keys file line %d: hash must be sha256:<64 hex digits>", line)
		}
		k.Name, k.Tenant = fields[0], ti
		if len(c.Gateway.Keys) >= maxKeysFileEntries {
			return fmt.Errorf("keys file: more than %d keys", maxKeysFileEntries)
		}
		c.Gateway.Keys = append(c.Gateway.Keys, k)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("keys file line %d: %w", line+1, err)
	}
	return nil
}
