// Package lab builds infergate's end-to-end topology out of network
// namespaces and runs real agents and mock inference servers in it. The Go
// end-to-end tests and `make demo` share it, so what the demo shows is what
// the tests prove.
//
//	client-1 ─┐                         ┌─ gpu-1 (decap agent, backend on :8080, VIPs on lo)
//	client-2 ─┤                         ├─ gpu-2
//	attacker ─┼── switch (bridge br0) ──┼─ gpu-3
//	          └─ balancer (XDP balancer agent on eth0)
//
// Clients route the VIPs through the balancer; the balancer's XDP program
// steers each new connection to a GPU host (IPIP or L2) and transmits it back
// out of eth0; the GPU hosts answer the clients directly (DSR). Every address
// comes from 198.18.0.0/15 and 2001:db8::/32.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/test/netns"
)

// Addresses of the topology.
var (
	// VIPs: IPIP-forwarded and L2-forwarded, one of each per family.
	VIP4   = netip.MustParseAddr("198.18.0.100")
	VIP4L2 = netip.MustParseAddr("198.18.0.101")
	VIP6   = netip.MustParseAddr("2001:db8::100")
	VIP6L2 = netip.MustParseAddr("2001:db8::101")
	// VIPNet4 and VIPNet6 are routed by the clients through the balancer.
	VIPNet4 = netip.MustParsePrefix("198.18.0.0/24")
	VIPNet6 = netip.MustParsePrefix("2001:db8::/64")

	// Link4 and Link6 are the switch's subnet.
	Link4 = netip.MustParsePrefix("198.18.1.0/24")
	Link6 = netip.MustParsePrefix("2001:db8:1::/64")

	// Denied4 and Denied6 are a firewall-denied prefix; the attacker
	// namespace holds one extra address in each (DeniedAddr4/6).
	Denied4     = netip.MustParsePrefix("198.18.1.96/28")
	Denied6     = netip.MustParsePrefix("2001:db8:1::90/124")
	DeniedAddr4 = netip.MustParseAddr("198.18.1.99")
	DeniedAddr6 = netip.MustParseAddr("2001:db8:1::99")

	// Trusted4 and Trusted6 cover the legitimate clients: their client
	// class has generous limits.
	Trusted4 = netip.MustParsePrefix("198.18.1.16/28")
	Trusted6 = netip.MustParsePrefix("2001:db8:1::20/124")
)

// Ports.
const (
	// ServicePort is the VIPs' port and the port every backend serves on:
	// with DSR the packet reaches the backend unchanged, so the ports match.
	ServicePort = 8080
	// LoadReportPort is where GPU host agents serve /load.
	LoadReportPort = 9400
	// GatewayPort is where a GPU host's L7 gateway listens when enabled.
	GatewayPort = 8443
	// BackendHeader names the GPU host that answered.
	BackendHeader = "X-Infergate-Backend"
	// LocalAddrHeader is the address the backend accepted the connection
	// on: the VIP under DSR.
	LocalAddrHeader = "X-Infergate-Local-Addr"
	// RemoteAddrHeader is the client address the backend saw.
	RemoteAddrHeader = "X-Infergate-Remote-Addr"
)

// Timing bounds.
const (
	agentReadyTimeout = 30 * time.Second
	agentStopTimeout  = 10 * time.Second
	backendReadyWait  = 10 * time.Second
	pollEvery         = 50 * time.Millisecond
)

// GPU describes one GPU host's mock inference server.
type GPU struct {
	// TTFT is the mock's time to first token once it holds a batch slot.
	TTFT time.Duration
	// TokensPerSecond paces its generation (0 instant).
	TokensPerSecond float64
	// Batch bounds its concurrent requests (0 takes mockllm's default).
	Batch int
	// Control serves POST /control/speed; KVEventsPort > 0 publishes its
	// prefix cache's KV events on the host's V4 address at that port,
	// with KVBlocks blocks and KVPrefillPerBlock per uncached block.
	Control           bool
	KVEventsPort      int
	KVBlocks          int
	KVPrefillPerBlock time.Duration
}

// Config describes a lab.
type Config struct {
	// Prefix starts every namespace and pin directory name; a random
	// suffix is added.
	Prefix string
	// Infergate and Iglab are the binaries (iglab serves the backends).
	Infergate, Iglab string
	// Dir holds state directories, sockets, policies and logs.
	Dir string
	// GPUs, one host each (default three with no delay).
	GPUs []GPU
	// Clients is the number of legitimate client namespaces (default 2).
	Clients int
	// BPFFS is where bpffs is mounted (default /sys/fs/bpf).
	BPFFS string
	// GPUAgentArgs are extra flags for the GPU hosts' agents.
	GPUAgentArgs []string
	// BalancerAgentArgs are extra flags for the balancer's agent.
	BalancerAgentArgs []string
}

// Node is one namespace on the switch.
type Node struct {
	Name   string
	NS     string
	V4, V6 netip.Addr
}

// Lab is a running topology.
type Lab struct {
	Topo     *netns.Topology
	Cfg      Config
	Switch   string
	Balancer Node
	GPUs     []Node
	Clients  []Node
	Attacker Node

	mu       sync.Mutex
	agents   map[string]*exec.Cmd
	backends map[string]*exec.Cmd
	pinDirs  []string
	closed   bool
}

// New creates the namespaces, links and addresses; nothing runs yet.
func New(cfg Config) (l *Lab, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "igl"
	}
	if len(cfg.GPUs) == 0 {
		cfg.GPUs = make([]GPU, 3)
	}
	if cfg.Clients == 0 {
		cfg.Clients = 2
	}
	if cfg.BPFFS == "" {
		cfg.BPFFS = "/sys/fs/bpf"
	}
	if cfg.Dir == "" {
		return nil, errors.New("lab: Config.Dir is required")
	}
	if len(cfg.GPUs) > 9 || cfg.Clients > 9 {
		return nil, errors.New("lab: at most 9 GPU hosts and 9 clients")
	}
	l = &Lab{Topo: netns.New(cfg.Prefix), Cfg: cfg, agents: map[string]*exec.Cmd{}, backends: map[string]*exec.Cmd{}}
	defer func() {
		if err != nil {
			_ = l.Close()
			l = nil
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	t := l.Topo
	if l.Switch, err = t.AddNS("sw"); err != nil {
		return nil, err
	}
	var ports []string
	add := func(name string, host int) (Node, error) {
		ns, err := t.AddNS(name)
		if err != nil {
			return Node{}, err
		}
		port := "p-" + name
		if len(port) > 15 {
			port = port[:15]
		}
		if err := t.Veth(ns, "eth0", l.Switch, port); err != nil {
			return Node{}, err
		}
		ports = append(ports, port)
		n := Node{Name: name, NS: ns, V4: hostAddr4(host), V6: hostAddr6(host)}
		cmds := [][]string{
			{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"},
			{"sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0"},
			{"ip", "addr", "add", n.V4.String() + "/24", "dev", "eth0"},
			{"ip", "-6", "addr", "add", n.V6.String() + "/64", "dev", "eth0", "nodad"},
			// A veth hands a local sender's packets on with the TCP/UDP
			// checksum left for offload (CHECKSUM_PARTIAL); once the
			// balancer's XDP program re-transmits them, nothing completes
			// it and the GPU host drops them as corrupt. Real NICs deliver
			// complete checksums, so the senders compute them here.
			{"ethtool", "-K", "eth0", "tx", "off"},
		}
		for _, c := range cmds {
			if err := t.Exec(ns, c...); err != nil {
				return Node{}, err
			}
		}
		return n, nil
	}
	if l.Balancer, err = add("bal", 1); err != nil {
		return nil, err
	}
	for i := range cfg.GPUs {
		n, err := add(fmt.Sprintf("gpu%d", i+1), 11+i)
		if err != nil {
			return nil, err
		}
		n.Name = fmt.Sprintf("gpu-%d", i+1)
		// The GPU hosts hold the VIPs on lo; they must not answer ARP for
		// them, or clients would bypass the balancer.
		cmds := [][]string{
			{"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
				"net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2", "net.ipv4.conf.lo.rp_filter=0"},
			{"ip", "addr", "add", VIP4.String() + "/32", "dev", "lo"},
			{"ip", "addr", "add", VIP4L2.String() + "/32", "dev", "lo"},
			{"ip", "-6", "addr", "add", VIP6.String() + "/128", "dev", "lo", "nodad"},
			{"ip", "-6", "addr", "add", VIP6L2.String() + "/128", "dev", "lo", "nodad"},
		}
		for _, c := range cmds {
			if err := t.Exec(n.NS, c...); err != nil {
				return nil, err
			}
		}
		l.GPUs = append(l.GPUs, n)
	}
	route := func(n Node) error {
		if err := t.Exec(n.NS, "ip", "route", "add", VIPNet4.String(), "via", l.Balancer.V4.String()); err != nil {
			return err
		}
		return t.Exec(n.NS, "ip", "-6", "route", "add", VIPNet6.String(), "via", l.Balancer.V6.String())
	}
	for i := 0; i < cfg.Clients; i++ {
		n, err := add(fmt.Sprintf("client%d", i+1), 21+i)
		if err != nil {
			return nil, err
		}
		n.Name = fmt.Sprintf("client-%d", i+1)
		if err := route(n); err != nil {
			return nil, err
		}
		l.Clients = append(l.Clients, n)
	}
	if l.Attacker, err = add("attacker", 66); err != nil {
		return nil, err
	}
	for _, c := range [][]string{
		{"ip", "addr", "add", DeniedAddr4.String() + "/24", "dev", "eth0"},
		{"ip", "-6", "addr", "add", DeniedAddr6.String() + "/64", "dev", "eth0", "nodad"},
	} {
		if err := t.Exec(l.Attacker.NS, c...); err != nil {
			return nil, err
		}
	}
	if err := route(l.Attacker); err != nil {
		return nil, err
	}
	if err := t.Bridge(l.Switch, "br0", ports...); err != nil {
		return nil, err
	}
	// The balancer transmits steered frames back out of eth0 with XDP_TX;
	// the veth drops them unless the switch's end runs an XDP program too.
	if err := t.AttachPass(l.Switch, "p-bal"); err != nil {
		return nil, err
	}
	return l, nil
}

func hostAddr4(host int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, 1, byte(host)})
}

func hostAddr6(host int) netip.Addr {
	return netip.MustParseAddr("2001:db8:1::" + strconv.Itoa(host))
}

// AgentSocket is a node's agent socket path.
func (l *Lab) AgentSocket(node string) string { return filepath.Join(l.Cfg.Dir, node, "agent.sock") }

// AgentLog is a node's agent log file.
func (l *Lab) AgentLog(node string) string { return filepath.Join(l.Cfg.Dir, node, "agent.log") }

// PinDir is a node agent's bpffs pin directory.
func (l *Lab) PinDir(node string) string {
	return filepath.Join(l.Cfg.BPFFS, l.Topo.Prefix+"-"+node)
}

// Client returns an API client for a node's agent.
func (l *Lab) Client(node string) *api.Client { return api.NewClient(l.AgentSocket(node)) }

// WritePolicy stores a policy document for a node and returns its path.
func (l *Lab) WritePolicy(name string, doc []byte) (string, error) {
	p := filepath.Join(l.Cfg.Dir, name+".yaml")
	if err := os.WriteFile(p, doc, 0o600); err != nil {
		return "", fmt.Errorf("write policy: %w", err)
	}
	return p, nil
}

// StartAgent starts a node's agent with role "balancer" or "gpu-host" and
// waits until its socket answers. It runs in the node's network namespace
// but the host's mount namespace (nsenter, not `ip netns exec`), so its
// bpffs pins outlive it and a restarted agent adopts them.
func (l *Lab) StartAgent(n Node, role, policyFile string, extra ...string) error {
	dir := filepath.Join(l.Cfg.Dir, n.Name)
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return fmt.Errorf("agent dir: %w", err)
	}
	sock := l.AgentSocket(n.Name)
	_ = os.Remove(sock)
	args := []string{"--net=/run/netns/" + n.NS, "--", l.Cfg.Infergate, "agent",
		"--role", role,
		"--state-dir", filepath.Join(dir, "state"),
		"--socket", sock,
		"--metrics-addr", "127.0.0.1:9464",
		"--bpffs", l.Cfg.BPFFS,
		"--pin-dir", l.PinDir(n.Name),
		"--resync", "2s",
	}
	if policyFile != "" {
		args = append(args, "--policy-file", policyFile)
	}
	args = append(args, extra...)
	logf, err := os.OpenFile(l.AgentLog(n.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("agent log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent on %s: %w", n.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	l.mu.Lock()
	l.agents[n.Name] = cmd
	l.pinDirs = appendOnce(l.pinDirs, l.PinDir(n.Name))
	l.mu.Unlock()
	deadline := time.Now().Add(agentReadyTimeout)
	c := l.Client(n.Name)
	for {
		select {
		case err := <-exited:
			l.mu.Lock()
			delete(l.agents, n.Name)
			l.mu.Unlock()
			return fmt.Errorf("agent on %s exited: %v; log %s:\n%s", n.Name, err, l.AgentLog(n.Name), tail(l.AgentLog(n.Name)))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			// Reap in the background so a later kill can be observed.
			go func() { <-exited }()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent on %s not ready after %s: %v; log:\n%s", n.Name, agentReadyTimeout, err, tail(l.AgentLog(n.Name)))
		}
		time.Sleep(pollEvery)
	}
}

// KillAgent stops a node's agent with sig (SIGKILL for a crash) and waits
// for it to be gone.
func (l *Lab) KillAgent(node string, sig syscall.Signal) error {
	l.mu.Lock()
	cmd := l.agents[node]
	delete(l.agents, node)
	l.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("no agent running on %s", node)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal agent on %s: %w", node, err)
	}
	deadline := time.Now().Add(agentStopTimeout)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return nil
		}
		// A zombie still answers signal 0 until reaped; /proc tells.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err != nil || zombie(st) {
			return nil
		}
		time.Sleep(pollEvery)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("agent on %s did not stop within %s", node, agentStopTimeout)
}

func zombie(stat []byte) bool {
	// /proc/pid/stat: "pid (comm) S ..." with comm possibly holding spaces.
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
		}
	}
	return false
}

// StartBackend starts GPU host i's mock inference server on all its
// addresses (the VIPs on lo included) at ServicePort.
func (l *Lab) StartBackend(i int) error {
	n := l.GPUs[i]
	g := l.Cfg.GPUs[i]
	args := []string{"--net=/run/netns/" + n.NS, "--", l.Cfg.Iglab, "backend",
		"--listen", fmt.Sprintf(":%d", ServicePort), "--host", n.Name,
		"--ttft", g.TTFT.String(), "--tokens-per-s", strconv.FormatFloat(g.TokensPerSecond, 'f', -1, 64)}
	if g.Batch > 0 {
		args = append(args, "--batch", strconv.Itoa(g.Batch))
	}
	if g.Control {
		args = append(args, "--control")
	}
	if g.KVEventsPort > 0 {
		args = append(args, "--kv-events", "tcp://"+netip.AddrPortFrom(n.V4, uint16(g.KVEventsPort)).String(),
			"--kv-blocks", strconv.Itoa(g.KVBlocks), "--kv-prefill-per-block", g.KVPrefillPerBlock.String())
	}
	logPath := filepath.Join(l.Cfg.Dir, n.Name, "backend.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return fmt.Errorf("backend dir: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("backend log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start backend on %s: %w", n.Name, err)
	}
	go func() { _ = cmd.Wait() }()
	l.mu.Lock()
	l.backends[n.Name] = cmd
	l.mu.Unlock()
	// Ready when its own address answers /health from the host's side of
	// the namespace.
	deadline := time.Now().Add(backendReadyWait)
	for {
		err := healthIn(n.NS, netip.AddrPortFrom(n.V4, ServicePort))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("backend on %s not ready: %w; log:\n%s", n.Name, err, tail(logPath))
		}
		time.Sleep(pollEvery)
	}
}

// KillBackend kills GPU host i's mock server (SIGKILL: its connections are
// reset by the kernel).
func (l *Lab) KillBackend(i int) error {
	name := l.GPUs[i].Name
	l.mu.Lock()
	cmd := l.backends[name]
	delete(l.backends, name)
	l.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("no backend running on %s", name)
	}
	return cmd.Process.Kill()
}

// StartAll starts the mock servers, the GPU hosts' agents and the
// balancer's agent, every one with policyFile.
func (l *Lab) StartAll(policyFile string) error {
	for i := range l.GPUs {
		if err := l.StartBackend(i); err != nil {
			return err
		}
	}
	for _, n := range l.GPUs {
		extra := append([]string{"--gateway=false",
			"--load-report-addr", netip.AddrPortFrom(n.V4, LoadReportPort).String(),
			"--inference-metrics-url", fmt.Sprintf("http://127.0.0.1:%d/metrics", ServicePort)}, l.Cfg.GPUAgentArgs...)
		if err := l.StartAgent(n, "gpu-host", policyFile, extra...); err != nil {
			return err
		}
	}
	if err := l.StartAgent(l.Balancer, "balancer", policyFile, l.Cfg.BalancerAgentArgs...); err != nil {
		return err
	}
	return l.PinBalancerRX()
}

// rxCPU is the CPU the balancer's receive processing is pinned to, and
// rxPriority its thread's SCHED_FIFO priority (what the kernel gives its
// own threaded interrupt handlers).
const (
	rxCPU      = "0"
	rxPriority = "50"
)

// PinBalancerRX makes the balancer's veth behave like a NIC with RSS: every
// packet of a flow is processed on the same CPU. The balancer keeps its
// connection table per CPU, as XDP balancers on real NICs do, trusting RSS
// to hash a flow to one queue and so one CPU. A veth instead runs XDP on
// whichever CPU the sender happened to run on, so a flow's packets wander
// between CPUs and, once a Maglev table changes, a packet seen on a CPU
// that has no entry for its flow is steered afresh. Threaded NAPI, with
// its kernel thread pinned to one CPU, gives the veth one receive CPU.
// Call it once the balancer's XDP program is attached (the thread exists
// from then on).
func (l *Lab) PinBalancerRX() error {
	before, err := napiThreads()
	if err != nil {
		return err
	}
	if err := l.Topo.Exec(l.Balancer.NS, "sh", "-c", "echo 1 > /sys/class/net/eth0/threaded"); err != nil {
		return err
	}
	deadline := time.Now().Add(backendReadyWait)
	for {
		after, err := napiThreads()
		if err != nil {
			return err
		}
		var pinned int
		for pid, name := range after {
			if _, old := before[pid]; old || !strings.HasPrefix(name, "napi/eth0-") {
				continue
			}
			if err := netns.Run("taskset", "-pc", rxCPU, strconv.Itoa(pid)); err != nil {
				return err
			}
			// Softirq work preempts processes; a NAPI thread does not,
			// unless it runs at a real-time priority. Without it a busy
			// machine lets the veth's ring overflow.
			if err := netns.Run("chrt", "-f", "-p", rxPriority, strconv.Itoa(pid)); err != nil {
				return err
			}
			pinned++
		}
		if pinned > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("balancer eth0: no NAPI thread appeared after enabling threaded NAPI")
		}
		time.Sleep(pollEvery)
	}
}

// napiThreads lists kernel NAPI threads by pid.
func napiThreads() (map[int]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	out := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		if name := strings.TrimSpace(string(b)); strings.HasPrefix(name, "napi/") {
			out[pid] = name
		}
	}
	return out, nil
}

// Close stops every process, detaches and unpins the agents' XDP programs
// and maps, and deletes the namespaces. Safe to call twice.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	agents, backends, pins := l.agents, l.backends, l.pinDirs
	l.agents, l.backends = map[string]*exec.Cmd{}, map[string]*exec.Cmd{}
	l.mu.Unlock()
	var errs []error
	for _, c := range agents {
		if c.Process != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range backends {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
	for _, c := range agents {
		waitGone(c)
	}
	for _, p := range pins {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if out, err := exec.Command(l.Cfg.Infergate, "agent", "uninstall", "--pin-dir", p).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("uninstall %s: %w: %s", p, err, out))
			_ = os.RemoveAll(p)
		}
	}
	l.killStragglers()
	if err := l.Topo.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killStragglers kills whatever still runs in the lab's namespaces (a
// process started outside Start*, or one whose start failed half way), so
// that deleting a namespace really frees it.
func (l *Lab) killStragglers() {
	nodes := append([]Node{l.Balancer, l.Attacker}, l.GPUs...)
	nodes = append(nodes, l.Clients...)
	for _, n := range nodes {
		if n.NS == "" {
			continue
		}
		out, err := exec.Command("ip", "netns", "pids", n.NS).Output()
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func waitGone(c *exec.Cmd) {
	if c.Process == nil {
		return
	}
	deadline := time.Now().Add(agentStopTimeout)
	for time.Now().Before(deadline) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil || zombie(st) {
			return
		}
		time.Sleep(pollEvery)
	}
	_ = c.Process.Kill()
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// tailBytes bounds how much of a log an error quotes.
const tailBytes = 4 << 10

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	return string(b)
}
