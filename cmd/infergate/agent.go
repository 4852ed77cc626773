package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/infergate/infergate/agent"
	"github.com/infergate/infergate/agent/xdpattach"
	"github.com/infergate/infergate/loader"
)

func newAgentCmd() *cobra.Command {
	var (
		cfg                agent.Config
		encap4, encap6     string
		logLevel, logFmt   string
		gatewayFlag        bool
		maxFlows, maxBkts  uint32
		maxFlows6          uint32
		maxEst, maxBackend uint32
		maxVIPs, maxRules  uint32
		clusterF           clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent (root): XDP data plane, health checks, local API",
		Long: `Run infergate's node agent. As root it mounts bpffs if missing, loads the XDP
objects (the balancer, or on a GPU host the decapsulator), adopts maps and links
a previous agent left pinned under --pin-dir (connections, conntrack and
rate-limit state carry on), applies the last stored policy (or --policy-file
when its content is new to the store: an unchanged or empty file never undoes
a later 'policy apply'),
and serves the local API on --socket (0600, the same flag and INFERGATE_SOCKET
the other commands use to reach it) once the data plane is reconciled: the
socket's presence means ready. SIGINT/SIGTERM stop the agent; the XDP programs
stay attached. 'infergate agent uninstall' detaches and unpins everything.

Roles:
  balancer   firewall, per-client rate limits and Maglev steering on
             spec.dataplane.interfaces; health checks; polls GPU load reports.
  gpu-host   decapsulator on spec.dataplane.decapInterfaces for localVIPs, the
             L7 gateway in front of the local inference server, and this
             host's GPU load report on --load-report-addr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newAgentLogger(cmd, logLevel, logFmt)
			if err != nil {
				return withCode(exitUsage, err)
			}
			if cfg.Role != agent.RoleBalancer && cfg.Role != agent.RoleGPUHost {
				return withCode(exitUsage, fmt.Errorf("--role %q: want balancer or gpu-host", cfg.Role))
			}
			src, err := clusterF.build(cfg.Role, log)
			if err != nil {
				return withCode(exitUsage, err)
			}
			if src != nil {
				cfg.Source = src
			}
			for _, p := range []struct {
				flag string
				s    string
				dst  *netip.Prefix
			}{{"--encap-source-v4", encap4, &cfg.EncapSourceV4}, {"--encap-source-v6", encap6, &cfg.EncapSourceV6}} {
				if p.s == "" {
					continue
				}
				pfx, err := netip.ParsePrefix(p.s)
				if err != nil {
					return withCode(exitUsage, fmt.Errorf("%s: %w", p.flag, err))
				}
				*p.dst = pfx
			}
			if os.Geteuid() != 0 {
				return withCode(exitUsage, errors.New("the agent needs root (BPF, XDP, bpffs)"))
			}
			cfg.Gateway = gatewayFlag
			if !cmd.Flags().Changed("gateway") {
				cfg.Gateway = cfg.Role == agent.RoleGPUHost
			}
			if !cmd.Flags().Changed("poll-load-reports") {
				cfg.PollLoadReports = cfg.Role == agent.RoleBalancer
			}
			cfg.Loader = loader.Config{MaxFlows: maxFlows, MaxFlows6: maxFlows6, MaxBuckets: maxBkts, MaxEstablishedClients: maxEst,
				MaxBackends: maxBackend, MaxVIPs: maxVIPs, MaxRules: maxRules}
			// The agent serves on the socket every other command reaches it
			// by: the root's --socket (env INFERGATE_SOCKET), not a flag of
			// its own that would shadow it with another default.
			cfg.Socket = agent.DefaultSocket
			if sf := cmd.Flag("socket"); sf != nil {
				cfg.Socket = sf.Value.String()
			}
			cfg.Version = version
			cfg.Logger = log
			tuneGC() // a GPU host's agent runs the same L7 gateway
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Role, "role", agent.RoleBalancer, "balancer or gpu-host")
	f.StringVar(&cfg.PolicyFile, "policy-file", "", "apply this policy at start when its content was never applied before (stored on success); otherwise, and when the file is empty, the stored policy stays")
	f.StringVar(&cfg.StateDir, "state-dir", agent.DefaultStateDir, "directory for applied policy versions (locked: one agent per directory)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", agent.DefaultMetricsAddr, "Prometheus /metrics listener (empty disables)")
	f.StringVar(&cfg.BPFFS, "bpffs", agent.DefaultBPFFS, "where bpffs is (mounted here when missing)")
	f.StringVar(&cfg.PinDir, "pin-dir", agent.DefaultPinDir, "where maps and XDP links are pinned (under --bpffs)")
	f.BoolVar(&cfg.AllowGeneric, "allow-generic", false, "fall back to generic (skb) XDP when native attach fails")
	f.StringVar(&encap4, "encap-source-v4", "", "outer source prefix of IPIP packets, host bits carry flow entropy (default: the node's address towards the backends, /32)")
	f.StringVar(&encap6, "encap-source-v6", "", "outer source prefix of IPv6-in-IPv6 packets (default: the node's address towards the backends, /128)")
	f.DurationVar(&cfg.Resync, "resync", agent.DefaultResync, "re-resolve neighbours and reconcile at least this often")
	f.DurationVar(&cfg.NeighbourWait, "neighbour-wait", agent.DefaultNeighbourWait, "how long to wait for a backend's next hop to answer ARP/ND")
	f.BoolVar(&gatewayFlag, "gateway", false, "run the L7 gateway (default: on for gpu-host)")
	f.StringVar(&cfg.GatewayListen, "gateway-listen", "", "L7 gateway listen address (default: the policy's gateway.listen)")
	f.StringVar(&cfg.LoadReportAddr, "load-report-addr", agent.DefaultLoadReportAddr, "gpu-host: serve this host's GPU load report at /load here; name the address balancers poll (empty disables)")
	f.StringVar(&cfg.LoadReportTokenFile, "load-report-token-file", "", "bearer token of load reports: a gpu-host requires it on /load, a balancer sends it when polling")
	f.StringVar(&cfg.InferenceMetricsURL, "inference-metrics-url", "", "gpu-host: the local inference server's Prometheus metrics (vLLM/SGLang/TGI)")
	f.BoolVar(&cfg.PollLoadReports, "poll-load-reports", false, "poll backends' load reports for pools with loadReports (default: on for balancer)")
	f.Uint32Var(&maxFlows, "max-flows", loader.DefaultMaxFlows, "IPv4 connection table size, in flows (one table shared by all CPUs)")
	f.Uint32Var(&maxFlows6, "max-flows6", 0, "IPv6 connection table size, in flows (default: --max-flows)")
	f.Uint32Var(&maxBkts, "max-buckets", loader.DefaultMaxBuckets, "rate-limit buckets for new clients")
	f.Uint32Var(&maxEst, "max-established-clients", loader.DefaultMaxEstablishedClients, "rate-limit buckets for clients with an established flow")
	f.Uint32Var(&maxBackend, "max-backends", loader.DefaultMaxBackends, "backend table size")
	f.Uint32Var(&maxVIPs, "max-vips", loader.DefaultMaxVIPs, "VIP table size")
	f.Uint32Var(&maxRules, "max-rules", loader.DefaultMaxRules, "firewall rules")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFmt, "log-format", "text", "text or json (to stderr)")
	clusterF.register(f)
	cmd.AddCommand(newAgentUninstallCmd())
	cmd.AddCommand(newAgentMountBPFFSCmd())
	return cmd
}

func newAgentUninstallCmd() *cobra.Command {
	var pinDir string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Detach the XDP programs and remove every pinned map and link (stop the agent first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if err := xdpattach.Uninstall(pinDir, log); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", pinDir)
			return err
		},
	}
	cmd.Flags().StringVar(&pinDir, "pin-dir", agent.DefaultPinDir, "the agent's pin directory")
	return cmd
}

func newAgentLogger(cmd *cobra.Command, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
