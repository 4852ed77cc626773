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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/infergate/infergate/gpu/report"
	"github.com/infergate/infergate/l7/gateway"
	"github.com/infergate/infergate/l7/serve"
	"github.com/infergate/infergate/policy"
)

const (
	defaultGatewayListen = "127.0.0.1:8080"
	gatewayShutdownGrace = 30 * time.Second
	// maxKeysFileEntries bounds --keys-file.
	maxKeysFileEntries = 2_000_000
	maxKeysFileLine    = 512
)

func newGatewayCmd() *cobra.Command {
	var configPath, listen, redisAddr, metricsAddr, keysFile, loadReportTokenFile string
	var loadReports bool
	cmd := &cobra.Command{
		Use:   "gateway -f policy.yaml",
		Short: "Run the L7 gateway on its own (unprivileged)",
		Long: `Run the OpenAI-compatible L7 gateway from a policy document: API keys and
JWT auth, token counting, prompt inspection, tenant limits and model routing.
Pools with loadReports on are steered by their backends' GPU load reports
(polled from each backend's loadReportURL) and by prompt-prefix affinity;
--load-reports=false turns that off (power of two choices on in-flight
requests, as for every other pool).
SIGHUP reloads the policy, all or nothing: a new listen address, limit
store or audit log is opened first, and if any field cannot be applied the
reload is refused and the running policy stays (in-flight requests finish on
the old one);
SIGINT/SIGTERM stop taking requests and finish open streams.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return withCode(exitUsage, errors.New("-f/--filename is required"))
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
			tuneGC()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			var loadReportToken string
			if loadReportTokenFile != "" {
				if loadReportToken, err = report.ReadTokenFile(loadReportTokenFile); err != nil {
					return withCode(exitUsage, fmt.Errorf("--load-report-token-file: %w", err))
				}
			}
			sg, err := newStandaloneGateway(c, standaloneOptions{LoadReports: loadReports, LoadReportToken: loadReportToken,
				Registry: reg, Logger: log, Listen: listen})
			if err != nil {
				return err
			}
			var msrv *http.Server
			if metricsAddr != "" {
				mln, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					_ = sg.Shutdown(context.Background())
					return fmt.Errorf("listen %s: %w", metricsAddr, err)
				}
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				msrv = gateway.NewServer(metricsAddr, mux)
				go func() { _ = msrv.Serve(mln) }()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					c, err := load()
					if err == nil {
						err = sg.Apply(c)
					}
					if err != nil {
						log.Error("reload policy refused; the previous one keeps serving", "err", err)
						continue
					}
					log.Info("policy reloaded", "name", c.Name, "version", c.Version, "addr", sg.Addr())
				}
			}()
			log.Info("gateway listening", "addr", sg.Addr(), "policy", c.Name, "version", c.Version)
			var serveErr error
			select {
			case <-ctx.Done():
			case serveErr = <-sg.Errors():
			}
			// Open streams finish within one grace period.
			sctx, cancel := context.WithTimeout(context.Background(), gatewayShutdownGrace)
			defer cancel()
			err = sg.Shutdown(sctx)
			if msrv != nil {
				_ = msrv.Close()
			}
			if serveErr != nil {
				return errors.Join(serveErr, err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "filename", "f", "", "policy document (YAML), as for every other command")
	// --config was this command's name for -f before the other commands
	// settled on -f/--filename; it keeps working.
	f.StringVar(&configPath, "config", "", "policy document (YAML)")
	_ = f.MarkDeprecated("config", "use -f/--filename")
	f.StringVar(&listen, "listen", "", "address to serve on, overriding the policy's gateway.listen (which defaults to "+policy.DefaultListen+")")
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
	// Listen overrides the policy's gateway.listen (--listen).
	Listen   string
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// standaloneGateway is "infergate gateway": the composition root l7/serve
// with the command's options, serving its first policy.
type standaloneGateway struct{ *serve.Server }

func newStandaloneGateway(c *policy.Compiled, o standaloneOptions) (*standaloneGateway, error) {
	so := serve.Options{Registry: o.Registry, Logger: o.Logger, Listen: o.Listen, DefaultListen: defaultGatewayListen,
		ShutdownGrace: gatewayShutdownGrace}
	if o.LoadReports {
		so.PollLoadReports = &serve.LoadsConfig{Interval: o.PollInterval, Log: o.Logger, Token: o.LoadReportToken}
	}
	s := serve.New(so)
	if err := s.Apply(c); err != nil {
		return nil, err
	}
	return &standaloneGateway{s}, nil
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
