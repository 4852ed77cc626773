package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/infergate/infergate/policy"
	"github.com/infergate/infergate/test/netns"
)

// A fleet is the lab with several balancer nodes behind a BGP router:
//
//	client-1 ─┐                          ┌─ gpu-1 (decap, L7 gateway, backend)
//	router ───┼── switch (bridge br0) ───┼─ gpu-2
//	  (bird2) │                          ├─ gpu-3
//	bal-1 ────┤                          └─ store (redis-server)
//	bal-2 ────┘
//
// The balancer nodes' agents announce the VIPs to the router (Debian's
// bird2) over BGP; the router installs one route per VIP with a next hop
// per announcing node (ECMP, hashed on the 5-tuple) and the client routes
// the VIPs through the router. The GPU hosts answer the client directly.
// Each family has its own BGP sessions, IPv4 and IPv6.
//
// Fed by a cluster (agents with --source=cluster), the fleet reaches the
// test's API server through RelayToHost: a listener on the store node that
// carries connections to the server on the test's loopback, so the agents
// reach it as a cluster's nodes reach theirs, at an address on their
// segment, and NodeArgs gives each agent its --node-name.

// AS numbers of the fleet.
const (
	RouterASN   = 64500
	BalancerASN = 64512
)

// Addresses of the fleet's router and store.
var (
	RouterAddr4 = netip.MustParseAddr("198.18.1.254")
	RouterAddr6 = hostAddr6(254)
	StoreAddr4  = netip.MustParseAddr("198.18.1.31")
)

// RedisPort is the store's redis-server port.
const RedisPort = 6379

// Fleet is a running multi-balancer lab. Lab.Balancer is Balancers[0].
type Fleet struct {
	*Lab
	Router    Node
	Balancers []Node
	Store     Node
	birdDir   string
	// rxPinned: balancer nodes whose receive thread is pinned already.
	rxPinned map[string]bool
	// NodeArgs, when set, gives each node's agent flags of its own
	// (--node-name for --source=cluster), after the role's.
	NodeArgs func(Node) []string
	relays   []*relay
}

// Close stops the relays, then the lab (Lab.Close).
func (f *Fleet) Close() error {
	var errs []error
	for _, r := range f.relays {
		if err := r.close(); err != nil {
			errs = append(errs, err)
		}
	}
	f.relays = nil
	return errors.Join(append(errs, f.Lab.Close())...)
}

// nodeArgs is NodeArgs(n), or nothing.
func (f *Fleet) nodeArgs(n Node) []string {
	if f.NodeArgs == nil {
		return nil
	}
	return f.NodeArgs(n)
}

// NewFleet creates the fleet's namespaces, links and addresses for n
// balancer nodes; nothing runs yet.
func NewFleet(cfg Config, n int) (f *Fleet, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "igf"
	}
	if len(cfg.GPUs) == 0 {
		cfg.GPUs = make([]GPU, 3)
	}
	if cfg.BPFFS == "" {
		cfg.BPFFS = "/sys/fs/bpf"
	}
	if cfg.Dir == "" {
		return nil, errors.New("lab: Config.Dir is required")
	}
	if n < 1 || n > 9 || len(cfg.GPUs) > 9 {
		return nil, errors.New("lab: 1-9 balancers and at most 9 GPU hosts")
	}
	cfg.Clients = 1
	l := &Lab{Topo: netns.New(cfg.Prefix), Cfg: cfg, agents: map[string]*exec.Cmd{}, backends: map[string]*exec.Cmd{}}
	f = &Fleet{Lab: l, rxPinned: map[string]bool{}}
	defer func() {
		if err != nil {
			_ = l.Close()
			f = nil
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
	add := func(name string, v4 netip.Addr, v6 netip.Addr) (Node, error) {
		ns, err := t.AddNS(name)
		if err != nil {
			return Node{}, err
		}
		port := "p-" + name
		if err := t.Veth(ns, "eth0", l.Switch, port); err != nil {
			return Node{}, err
		}
		ports = append(ports, port)
		n := Node{Name: name, NS: ns, V4: v4, V6: v6}
		for _, c := range [][]string{
			{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"},
			{"sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0"},
			{"ip", "addr", "add", v4.String() + "/24", "dev", "eth0"},
			{"ip", "-6", "addr", "add", v6.String() + "/64", "dev", "eth0", "nodad"},
			// Complete checksums on send (see New).
			{"ethtool", "-K", "eth0", "tx", "off"},
		} {
			if err := t.Exec(ns, c...); err != nil {
				return Node{}, err
			}
		}
		return n, nil
	}
	if f.Router, err = add("rtr", RouterAddr4, RouterAddr6); err != nil {
		return nil, err
	}
	// The router forwards back out of the interface packets came in on:
	// no redirects, or the client would learn to bypass it. ECMP hashes
	// the 5-tuple, so each connection takes one path and connections
	// spread over the balancer nodes.
	if err := t.Exec(f.Router.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0",
		"net.ipv4.fib_multipath_hash_policy=1",
		"net.ipv6.conf.all.forwarding=1", "net.ipv6.fib_multipath_hash_policy=1"); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		b, err := add(fmt.Sprintf("bal%d", i+1), hostAddr4(1+i), hostAddr6(1+i))
		if err != nil {
			return nil, err
		}
		b.Name = fmt.Sprintf("bal-%d", i+1)
		f.Balancers = append(f.Balancers, b)
	}
	l.Balancer = f.Balancers[0]
	for i := range cfg.GPUs {
		g, err := add(fmt.Sprintf("gpu%d", i+1), hostAddr4(11+i), hostAddr6(11+i))
		if err != nil {
			return nil, err
		}
		g.Name = fmt.Sprintf("gpu-%d", i+1)
		for _, c := range [][]string{
			{"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
				"net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2", "net.ipv4.conf.lo.rp_filter=0"},
			{"ip", "addr", "add", VIP4.String() + "/32", "dev", "lo"},
			{"ip", "addr", "add", VIP4L2.String() + "/32", "dev", "lo"},
			{"ip", "-6", "addr", "add", VIP6.String() + "/128", "dev", "lo", "nodad"},
			{"ip", "-6", "addr", "add", VIP6L2.String() + "/128", "dev", "lo", "nodad"},
		} {
			if err := t.Exec(g.NS, c...); err != nil {
				return nil, err
			}
		}
		l.GPUs = append(l.GPUs, g)
	}
	c, err := add("client1", hostAddr4(21), hostAddr6(21))
	if err != nil {
		return nil, err
	}
	c.Name = "client-1"
	// The client sends everything for the VIPs to the router; nothing
	// else on the segment knows a route for them until BGP gives one.
	if err := t.Exec(c.NS, "ip", "route", "add", VIPNet4.String(), "via", RouterAddr4.String()); err != nil {
		return nil, err
	}
	if err := t.Exec(c.NS, "ip", "-6", "route", "add", VIPNet6.String(), "via", RouterAddr6.String()); err != nil {
		return nil, err
	}
	if err := t.Exec(c.NS, "sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0",
		"net.ipv6.conf.all.accept_redirects=0", "net.ipv6.conf.eth0.accept_redirects=0"); err != nil {
		return nil, err
	}
	l.Clients = []Node{c}
	if f.Store, err = add("store", StoreAddr4, hostAddr6(31)); err != nil {
		return nil, err
	}
	if err := t.Bridge(l.Switch, "br0", ports...); err != nil {
		return nil, err
	}
	for i := range f.Balancers {
		if err := t.AttachPass(l.Switch, fmt.Sprintf("p-bal%d", i+1)); err != nil {
			return nil, err
		}
	}
	f.birdDir = filepath.Join(cfg.Dir, "bird")
	return f, nil
}

// BirdSocket is the router's bird control socket.
func (f *Fleet) BirdSocket() string { return filepath.Join(f.birdDir, "bird.ctl") }

// birdConfig peers passively with every balancer node, once per address
// family (the agents announce each VIP on the session of its family), and
// exports the learnt routes to the kernel, merging equal ones into one
// multipath route.
func (f *Fleet) birdConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `router id %s;
log "%s" all;
protocol device { scan time 1; }
protocol kernel {
	ipv4 { import none; export all; };
	merge paths on;
}
protocol kernel {
	ipv6 { import none; export all; };
	merge paths on;
}
template bgp balancer {
	local %s as %d;
	passive on;
	hold time 9;
	connect retry time 1;
	ipv4 { import all; export none; };
}
template bgp balancer6 {
	local %s as %d;
	passive on;
	hold time 9;
	connect retry time 1;
	ipv6 { import all; export none; };
}
`, RouterAddr4, filepath.Join(f.birdDir, "bird.log"), RouterAddr4, RouterASN, RouterAddr6, RouterASN)
	for i, n := range f.Balancers {
		fmt.Fprintf(&b, "protocol bgp bal%d from balancer { neighbor %s as %d; }\n", i+1, n.V4, BalancerASN)
		fmt.Fprintf(&b, "protocol bgp bal%dv6 from balancer6 { neighbor %s as %d; }\n", i+1, n.V6, BalancerASN)
	}
	return b.String()
}

// StartRouter writes bird's configuration into the lab's directory and
// starts bird in the router namespace, its control socket beside it.
func (f *Fleet) StartRouter() error {
	if err := os.MkdirAll(f.birdDir, 0o700); err != nil {
		return fmt.Errorf("bird dir: %w", err)
	}
	conf := filepath.Join(f.birdDir, "bird.conf")
	if err := os.WriteFile(conf, []byte(f.birdConfig()), 0o600); err != nil {
		return fmt.Errorf("bird config: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(f.birdDir, "bird.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("bird output: %w", err)
	}
	defer out.Close()
	if _, err := f.Topo.Start(f.Router.NS, out, out, "bird", "-f", "-c", conf, "-s", f.BirdSocket(),
		"-P", filepath.Join(f.birdDir, "bird.pid")); err != nil {
		return err
	}
	deadline := time.Now().Add(backendReadyWait)
	for {
		if _, err := f.Birdc("show", "status"); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(f.birdDir, "bird.out"))
			return fmt.Errorf("bird did not come up: %s", b)
		}
		time.Sleep(pollEvery)
	}
}

// Birdc runs a command on the router's bird.
func (f *Fleet) Birdc(args ...string) (string, error) {
	return f.Topo.Output(f.Router.NS, append([]string{"birdc", "-s", f.BirdSocket()}, args...)...)
}

// RouterLog is bird's log.
func (f *Fleet) RouterLog() string { return filepath.Join(f.birdDir, "bird.log") }

// NextHops lists the next hops of the router's kernel route to vip (none
// when it has no route), sorted.
func (f *Fleet) NextHops(vip netip.Addr) ([]netip.Addr, error) {
	fam := "-4"
	if vip.Is6() {
		fam = "-6"
	}
	out, err := f.Topo.Output(f.Router.NS, "ip", fam, "-j", "route", "show", "exact", netip.PrefixFrom(vip, vip.BitLen()).String())
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("ip -j route: %w: %s", err, out)
	}
	var hops []netip.Addr
	for _, r := range routes {
		gws := []string{r.Gateway}
		for _, n := range r.Nexthops {
			gws = append(gws, n.Gateway)
		}
		for _, g := range gws {
			if a, err := netip.ParseAddr(g); err == nil {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// StartStore starts redis-server on the store node (no persistence).
func (f *Fleet) StartStore() error {
	out, err := os.OpenFile(filepath.Join(f.Cfg.Dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("redis log: %w", err)
	}
	defer out.Close()
	if _, err := f.Topo.Start(f.Store.NS, out, out, "redis-server", "--bind", StoreAddr4.String(),
		"--port", fmt.Sprint(RedisPort), "--save", "", "--appendonly", "no", "--protected-mode", "no"); err != nil {
		return err
	}
	deadline := time.Now().Add(backendReadyWait)
	for {
		if o, err := f.Topo.Output(f.Store.NS, "redis-cli", "-h", StoreAddr4.String(), "-p", fmt.Sprint(RedisPort), "ping"); err == nil && strings.TrimSpace(o) == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("redis-server did not answer PING")
		}
		time.Sleep(pollEvery)
	}
}

// FleetPolicy is the lab's policy for the fleet: every balancer node is a
// decapsulation source, and the VIPs are announced to the router, each on
// the BGP session of its address family.
func (f *Fleet) FleetPolicy(o PolicyOptions) *policy.Document {
	d := f.Policy(o)
	dp := &d.Spec.Dataplane
	dp.DecapSources = nil
	for _, b := range f.Balancers {
		dp.DecapSources = append(dp.DecapSources, b.V4.String(), b.V6.String())
	}
	dp.BGP = &policy.BGP{LocalASN: BalancerASN,
		Peers: []policy.BGPPeer{
			{Address: RouterAddr4.String(), ASN: RouterASN, HoldTime: policy.Duration(9 * time.Second)},
			{Address: RouterAddr6.String(), ASN: RouterASN, HoldTime: policy.Duration(9 * time.Second)},
		}}
	return d
}

// StartGPUs starts the mock servers and the GPU hosts' agents with
// policyFile; StartBalancer then brings up each balancer node.
func (f *Fleet) StartGPUs(policyFile string) error {
	for i := range f.GPUs {
		if err := f.StartBackend(i); err != nil {
			return err
		}
	}
	for _, n := range f.GPUs {
		extra := append([]string{"--inference-metrics-url", fmt.Sprintf("http://127.0.0.1:%d/metrics", ServicePort)}, f.Cfg.GPUAgentArgs...)
		extra = append(extra, f.nodeArgs(n)...)
		if err := f.StartAgent(n, "gpu-host", policyFile, extra...); err != nil {
			return err
		}
	}
	return nil
}

// StartBalancer starts one balancer node's agent (again, after a stop: it
// adopts its pinned state). With no policyFile (--source=cluster) it waits
// until the agent has attached its XDP program, which it does once the
// cluster's policy is applied.
func (f *Fleet) StartBalancer(b Node, policyFile string) error {
	if err := f.StartAgent(b, "balancer", policyFile, append(slices.Clone(f.Cfg.BalancerAgentArgs), f.nodeArgs(b)...)...); err != nil {
		return err
	}
	if f.rxPinned[b.Name] {
		return nil
	}
	if err := f.WaitAttached(b); err != nil {
		return err
	}
	keep := f.Balancer
	f.Balancer = b
	defer func() { f.Balancer = keep }()
	if err := f.PinBalancerRX(); err != nil {
		return err
	}
	f.rxPinned[b.Name] = true
	return nil
}

// attachWait bounds how long an agent fed by the cluster takes to apply
// its first policy: the API server's answers on a loaded machine included.
const attachWait = 60 * time.Second

// WaitAttached polls a node's agent until an XDP program is attached to
// one of its interfaces.
func (f *Fleet) WaitAttached(n Node) error {
	deadline := time.Now().Add(attachWait)
	c := f.Client(n.Name)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil {
			for _, i := range st.Interfaces {
				if i.Attached {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent on %s attached no XDP program within %s (status %+v, %v); log:\n%s", n.Name, attachWait, st, err, tail(f.AgentLog(n.Name)))
		}
		time.Sleep(pollEvery)
	}
}
