// Package agent is infergate's node agent: it turns the applied policy, GPU
// load reports and health checks into kernel map contents (a diff-based,
// all-or-nothing Reconciler over a Dataplane), attaches and adopts the XDP
// programs, and serves the local API on a root-only unix socket.
//
// # Running it (what end-to-end tests and the demo rely on)
//
//	infergate agent --role balancer|gpu-host \
//	    --policy-file policy.yaml          # optional; applied only when new (startup.go)
//	    --state-dir /var/lib/infergate     # one agent per directory (flock)
//	    --socket /run/infergate/agent.sock # 0600 in a 0700 directory
//	    --metrics-addr 127.0.0.1:9464      # "" disables
//	    --bpffs /sys/fs/bpf --pin-dir /sys/fs/bpf/infergate
//	    [--allow-generic] [--encap-source-v4 198.18.0.0/24]
//	    [--gateway-listen 127.0.0.1:8080] [--load-report-addr 127.0.0.1:9400]
//	    [--load-report-token-file /etc/infergate/load-report-token]
//	    [--inference-metrics-url http://127.0.0.1:8000/metrics]
//	    [--source cluster --node-name $NODE_NAME --lease-namespace $POD_NAMESPACE]
//	        # desired state from the cluster too (package cluster, agent.Source)
//	infergate agent uninstall --pin-dir /sys/fs/bpf/infergate
//
// Listeners bind to what the operator names and to loopback otherwise:
// metrics on 127.0.0.1:9464, the GPU load report on 127.0.0.1:9400, the L7
// gateway on the policy's gateway.listen (default 127.0.0.1:8080). A GPU
// host whose report balancers poll names its address with
// --load-report-addr and should set --load-report-token-file: /load then
// answers 401 to any request without "Authorization: Bearer <token>"
// (compared as SHA-256 digests in constant time), and the balancer given the
// same file sends it. Serving the report beyond loopback without a token is
// allowed but logged as a warning.
//
// Readiness: the socket exists only once the first reconcile succeeded (an
// invalid --policy-file on a node with no stored policy makes the agent exit
// non-zero with the problems instead). The stored policy wins over
// --policy-file unless the file's content was never applied on this node,
// and an empty file is never applied, so a restart never runs less than
// what was applied (startup.go). The L7 gateway is l7/serve, the
// composition root "infergate gateway" uses too; a GPU host's load report
// runs the NVML Xid watcher. Logs go to stderr (slog, --log-format text|json). SIGINT and
// SIGTERM stop it cleanly: the socket is removed, the L7 gateway finishes
// open streams, and the XDP programs stay attached through their pinned
// links, with maps (connections, rate-limit buckets, VIPs) intact. SIGKILL
// leaves the same state; the next agent removes the stale socket, loads
// the pinned maps, swaps its program into each pinned link (link.Update,
// never a detach), keeps backend IDs by reading the backend table back, and
// rewrites only what it cannot read back. A pinned map whose layout differs
// from the program's is refused with an error naming the pin directory.
//
// Network namespaces: `ip netns exec` gives each command a private mount
// namespace with /sys remounted, so a bpffs the agent mounts under /sys
// vanishes with it. To keep pins across agent restarts in a namespace,
// mount one bpffs outside /sys beforehand (mount -t bpf bpf /run/x/bpf) and
// pass --bpffs /run/x/bpf --pin-dir /run/x/bpf/<node>.
//
// A namespace topology that carries real traffic (checked by hand: IPIP and
// L2 DSR, IPv4 and IPv6, and a download surviving kill -9 and restart of
// the balancer's agent): clients, balancer and GPU hosts on one bridge; an
// XDP_PASS program on the bridge-side peer of the balancer's veth (veth
// drops XDP_TX frames otherwise); TX checksum offload off on the clients'
// veths (ethtool -K <dev> tx off: a locally sent TCP segment carries only a
// partial checksum, which XDP forwarding does not finish, and the GPU host
// then drops it as TcpInCsumErrors); on each GPU host the VIP on lo and the
// server bound to 0.0.0.0, so health checks to the host's own address
// reach it too; the client routes the VIP via the balancer.
//
// # Layout
//
// Package agent wires the node together: Run (run.go) and the Agent
// (agent.go) over the Reconciler (reconcile.go, desired.go, keys.go) and
// its Dataplane (dataplane.go, loaderdp.go), netlink routes, neighbours
// and link events (netnode.go), load reports (loadobserve.go), metrics, the
// policy store and the local API server (server.go). Concerns with a narrow
// interface live in subpackages:
//
//   - agent/api: the local API's wire types and its client (the CLI's side).
//   - agent/api/apitest: an in-memory stand-in for that API, for CLI tests.
//   - agent/health: TCP/HTTP backend health checks with rise/fall; the
//     agent turns its flips into weight overrides.
//   - agent/xdpattach: the bpffs mount, XDP attach through pinned links,
//     adoption of a previous agent's links, and Uninstall.
//   - agent/internal/vethtest: the veth-and-namespace topology the agent's
//     real-kernel tests share.
//
// Roles: a balancer attaches the balancer program to
// spec.dataplane.interfaces, health-checks pool backends, and polls the load
// reports of pools with loadReports on. Packets leave by XDP_TX, out of the
// interface they came in on, so every backend must be reachable through an
// attached interface (checked: a backend routed elsewhere is refused); a
// veth peer receiving XDP_TX frames needs an XDP program of its own. A
// gpu-host attaches the decapsulator to spec.dataplane.decapInterfaces for
// spec.dataplane.localVIPs, accepting encapsulated packets only from the
// balancers named in spec.dataplane.decapSources (none when empty), runs
// the L7 gateway (on by default for this role) and serves its GPU load
// report at /load. A balancer expires established flows and known clients
// idle for an hour (IdleFlowTimeout, IdleClientTimeout).
//
// VIP announcement (announce.go, agent/bgp): a balancer whose policy has
// spec.dataplane.bgp runs an in-process BGP speaker (gobgp) that opens
// sessions to the named peers (it listens on nothing unless
// spec.dataplane.bgp.listen names an address) and announces the VIPs, so
// routers spread clients over the balancer nodes by ECMP. The same policy
// serves every node: the router ID, when left out, is the node's IPv4
// source towards its first IPv4 peer. The node withdraws every route but
// keeps its sessions and keeps forwarding while it is drained (`POST
// /v1/drain?on=true`, kept in the state directory across restarts) or its
// data plane is unhealthy (the last map update failed, or XDP is not
// attached to a named interface); stopping the agent withdraws and closes
// the sessions while XDP goes on forwarding through its pinned links.
// Flows the router moves keep their backend on the other node (package
// maglev says why and when not).
//
// Desired state the node refuses (400 with problems, nothing changed): an
// unknown interface, a VIP listed twice, a backend with no route or routed
// through an interface the balancer is not on, an L2 VIP with a backend
// that is not on-link, a VIP and backend of different families, a pool
// with no backend of positive weight. A backend whose neighbour does not
// answer ARP/ND is kept out of new flows (weight 0) and retried on the next
// resync; when every backend of a pool fails its health checks the pool
// keeps its configured weights (panic mode, logged) rather than steer
// nothing.
package agent
