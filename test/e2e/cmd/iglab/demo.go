package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/test/e2e/lab"
)

// Demo sizes: small enough to finish in about a minute on two cores.
const (
	demoRequestsPerClient = 300
	demoConcurrency       = 8
	demoFloodPackets      = 30_000
	demoFloodDuration     = 3 * time.Second
	demoFloodPPS          = 20_000
	demoDeniedTries       = 5
	demoDeniedTimeout     = 300 * time.Millisecond
	demoRequestTimeout    = 5 * time.Second
	// The attacker's class: everyone outside the trusted clients.
	demoDefaultPPS   = 2000
	demoDefaultConns = 50
	maxDemoHold      = time.Hour
)

func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	inf := fs.String("infergate", "bin/infergate", "infergate binary")
	prefix := fs.String("prefix", "igdemo", "namespace and pin-directory prefix")
	dir := fs.String("dir", "", "state, sockets, policy and logs (default: a new temp dir, removed at the end)")
	hold := fs.Duration("hold", 0, "keep the lab up this long after the summary (to try the commands)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hold > maxDemoHold {
		return fmt.Errorf("--hold %s: at most %s", *hold, maxDemoHold)
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root (network namespaces, XDP, bpffs)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *inf, err = absPath(*inf); err != nil {
		return err
	}
	keepDir := *dir != ""
	if !keepDir {
		if *dir, err = os.MkdirTemp("", "igdemo-"); err != nil {
			return err
		}
		defer os.RemoveAll(*dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	step := func(format string, a ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	step("building the topology: 2 clients, an attacker, the balancer, 3 GPU hosts on a bridge")
	l, err := lab.New(lab.Config{Prefix: *prefix, Infergate: *inf, Iglab: self, Dir: *dir,
		// Different speeds, as a real fleet has; each GPU host runs the L7
		// gateway in front of its inference server.
		GPUs:         demoGPUs,
		GPUAgentArgs: []string{"--gateway=true", "--gateway-listen", fmt.Sprintf(":%d", lab.GatewayPort)}})
	if err != nil {
		return err
	}
	defer func() {
		step("cleaning up: agents stopped, XDP detached and unpinned, namespaces deleted")
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}()
	opts := lab.PolicyOptions{Name: "demo", HealthCheck: true, Deny: true, LoadReports: true,
		DefaultPPS: demoDefaultPPS, DefaultConns: demoDefaultConns,
		GatewayVIP: true, Gateway: lab.AIGateway(demoAlice, demoBob)}
	doc, err := l.PolicyYAML(opts)
	if err != nil {
		return err
	}
	pf, err := l.WritePolicy("demo", doc)
	if err != nil {
		return err
	}
	step("starting 3 mock inference servers, 3 GPU-host agents (decap, L7 gateway, load report) and the balancer agent (XDP)")
	if err := l.StartAll(pf); err != nil {
		return err
	}
	bal := l.Client(l.Balancer.Name)
	st, err := bal.Status(ctx)
	if err != nil {
		return err
	}
	for _, i := range st.Interfaces {
		step("balancer: %s program on %s, %s mode, attached=%v; policy %s", i.Program, i.Name, i.Mode, i.Attached, st.Policy.Name)
	}
	fmt.Printf("\nPolicy (%s):\n  VIPs %s and %s (IPIP), %s and %s (L2 DSR), port %d -> pool of %d GPU hosts\n",
		pf, lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2, lab.ServicePort, len(l.GPUs))
	fmt.Printf("  firewall: deny %s and %s\n", lab.Denied4, lab.Denied6)
	fmt.Printf("  rate limits: trusted clients %s unlimited in practice; everyone else %d packets/s, %d new connections/s\n",
		lab.Trusted4, demoDefaultPPS, demoDefaultConns)
	fmt.Printf("  L7 gateway on every GPU host, behind %s:%d: tenants alice (unlimited) and bob (%d tokens/minute),\n"+
		"  model %s at $%.2f/$%.2f per million tokens in/out, prompts with cloud keys blocked\n\n",
		lab.VIP4, lab.GatewayPort, demoBobTPM, lab.AIModel, lab.AIInputPerMTok, lab.AIOutputPerMTok)

	vips := []netip.Addr{lab.VIP4, lab.VIP6, lab.VIP4L2, lab.VIP6L2}
	runClients := func(n int) ([]clientRun, error) {
		out := make([]clientRun, len(l.Clients))
		errc := make(chan error, len(l.Clients))
		for i, c := range l.Clients {
			d, err := lab.NewDialer(c.NS)
			if err != nil {
				return nil, err
			}
			defer d.Close()
			out[i].name = c.Name
			go func(i int, d *lab.Dialer) {
				out[i].tally = lab.Requests(ctx, d.HTTPClient(false, demoRequestTimeout), vips, n, demoConcurrency)
				errc <- nil
			}(i, d)
		}
		for range l.Clients {
			<-errc
		}
		return out, ctx.Err()
	}

	step("clients send %d HTTP requests each (one TCP connection per request) to the four VIPs", demoRequestsPerClient)
	runs, err := runClients(demoRequestsPerClient)
	if err != nil {
		return err
	}
	for _, r := range runs {
		step("  %s: %d ok, %d failed, answered by %s", r.name, r.tally.OK, r.tally.Failed, fmtCounts(r.tally.ByBackend))
		if r.tally.FirstErr != nil {
			step("  %s: first failure: %v", r.name, r.tally.FirstErr)
		}
	}

	step("a client in the denied prefix (%s) tries %d connections", lab.DeniedAddr4, demoDeniedTries)
	dd, err := lab.NewDialer(l.Attacker.NS)
	if err != nil {
		return err
	}
	defer dd.Close()
	denied := dd.WithLocal(lab.DeniedAddr4)
	through := 0
	for i := 0; i < demoDeniedTries; i++ {
		cctx, cancel := context.WithTimeout(ctx, demoDeniedTimeout)
		c, err := denied.DialContext(cctx, "tcp", netip.AddrPortFrom(lab.VIP4, lab.ServicePort).String())
		cancel()
		if err == nil {
			through++
			c.Close()
		}
	}
	step("  %d of %d got through", through, demoDeniedTries)

	step("the attacker floods: %d SYNs and %d UDP datagrams (each at most %s) while the clients keep working",
		demoFloodPackets, demoFloodPackets, demoFloodDuration)
	fc := l.Attack(demoFloodPackets, demoFloodPPS, demoFloodDuration)
	during, err := runClients(demoRequestsPerClient / 3)
	if err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		f := <-fc
		if f.Err != nil {
			return fmt.Errorf("%s flood: %w", f.Kind, f.Err)
		}
		step("  %s flood: sent %d packets in %s", f.Kind, f.Sent, f.Elapsed.Round(time.Millisecond))
	}
	for _, r := range during {
		step("  %s during the flood: %d ok, %d failed", r.name, r.tally.OK, r.tally.Failed)
		if r.tally.FirstErr != nil {
			step("  %s: first failure: %v", r.name, r.tally.FirstErr)
		}
	}

	ai, err := runAI(ctx, l, step)
	if err != nil {
		return err
	}

	bs, err := bal.Backends(ctx)
	if err != nil {
		return err
	}
	stats, err := bal.Stats(ctx)
	if err != nil {
		return err
	}
	decap := map[string]uint64{}
	for _, g := range l.GPUs {
		gs, err := l.Client(g.Name).Stats(ctx)
		if err != nil {
			return err
		}
		decap[g.Name] = gs.Verdicts["decapsulated"]
	}
	printSummary(l, append(runs, during...), bs, stats, through, decap)
	ai.print()
	fmt.Println("\nThe agents' own views (infergate CLI over the balancer's socket):")
	for _, args := range [][]string{{"backends"}, {"stats"}} {
		cmd := exec.CommandContext(ctx, *inf, append([]string{"--socket", l.AgentSocket(l.Balancer.Name)}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Printf("\n$ infergate --socket %s %s\n", l.AgentSocket(l.Balancer.Name), strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			return err
		}
	}
	sock := l.AgentSocket(l.Balancer.Name)
	fmt.Printf(`
To look further while a lab is up (make demo DEMO_HOLD=10m keeps it up):
  infergate --socket %[1]s status
  infergate --socket %[1]s backends -o yaml
  infergate --socket %[1]s stats
  infergate --socket %[1]s top
  infergate --socket %[1]s policy get
  infergate --socket %[2]s stats            # a GPU host's decapsulator
  ip netns exec %[3]s curl -s http://%[4]s:%[5]d/v1/models
  ip netns exec %[3]s curl -s http://%[4]s:%[7]d/v1/chat/completions -H 'Authorization: Bearer %[8]s' \
      -d '{"model":"%[9]s","messages":[{"role":"user","content":"hi"}]}'
  logs: %[6]s/*/agent.log
`, sock, l.AgentSocket(l.GPUs[0].Name), l.Clients[0].NS, lab.VIP4, lab.ServicePort, *dir,
		lab.GatewayPort, demoAlice.Key, lab.AIModel)
	if *hold > 0 {
		step("holding the lab for %s (Ctrl-C ends it)", *hold)
		select {
		case <-ctx.Done():
		case <-time.After(*hold):
		}
	}
	return nil
}

type clientRun struct {
	name  string
	tally *lab.Tally
}

// dropReasons explains the balancer's drop counters in the summary.
var dropReasons = map[string]string{
	"drop_fw_rule":         "a firewall rule denied the source",
	"drop_fw_default":      "the firewall's default action denied it",
	"drop_rate_packets":    "the client's class packets/s limit",
	"drop_rate_conns":      "the client's class new-connections/s limit",
	"drop_vip_guard":       "the VIP's new-connections/s guard",
	"drop_no_backend":      "no backend could take a new flow",
	"drop_malformed":       "malformed packet",
	"drop_fragment_to_vip": "IP fragment addressed to a VIP",
}

func printSummary(l *lab.Lab, runs []clientRun, bs []api.Backend, st *api.Stats, deniedThrough int, decap map[string]uint64) {
	fmt.Println("\n==================== summary ====================")
	total := map[string]int{}
	ok, failed := 0, 0
	for _, r := range runs {
		for k, v := range r.tally.ByBackend {
			total[k] += v
		}
		ok += r.tally.OK
		failed += r.tally.Failed
	}
	fmt.Printf("Requests from the legitimate clients: %d answered, %d failed\n", ok, failed)
	fmt.Println("Answered per GPU host (each answer names its host; replies went straight to the client, DSR):")
	for _, g := range l.GPUs {
		pct := 0.0
		if ok > 0 {
			pct = 100 * float64(total[g.Name]) / float64(ok)
		}
		fmt.Printf("  %-6s %5d  (%4.1f%%)\n", g.Name, total[g.Name], pct)
	}
	fmt.Println("New flows the balancer's XDP program steered, per pool backend (weight from GPU load reports):")
	for _, b := range bs {
		fmt.Printf("  %-7s %-6s weight %-4d healthy=%-5v new flows %d\n", b.Pool, b.Name, b.Weight, b.Healthy, b.NewFlows)
	}
	fmt.Print("IPIP packets the GPU hosts' XDP decapsulators unwrapped:")
	for _, g := range l.GPUs {
		fmt.Printf("  %s %d", g.Name, decap[g.Name])
	}
	fmt.Println(" (L2-forwarded packets arrive unwrapped)")
	fmt.Println("Dropped in XDP before reaching any GPU host:")
	var reasons []string
	for k, v := range st.Drops {
		if v > 0 {
			reasons = append(reasons, k)
		}
	}
	sort.Strings(reasons)
	if len(reasons) == 0 {
		fmt.Println("  nothing")
	}
	for _, k := range reasons {
		why := dropReasons[k]
		if why == "" {
			why = k
		}
		fmt.Printf("  %-18s %7d  %s\n", k, st.Drops[k], why)
	}
	fmt.Printf("Denied prefix %s: %d connection attempts got through\n", lab.Denied4, deniedThrough)
}

func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func absPath(p string) (string, error) {
	if !strings.ContainsRune(p, os.PathSeparator) {
		return exec.LookPath(p)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("infergate binary: %w", err)
	}
	return filepath.Abs(p)
}
