// Package cluster makes the Kubernetes cluster a source of the agent's
// desired state (infergate agent --source=cluster), beside the policy file
// and the local API.
//
// # One apply path
//
// The cluster is read into one policy document (Compose) and that
// document goes through the agent's Apply, the path of `infergate policy
// apply`: decode, validate, compile, check against the node, then kernel,
// L7 and store all or nothing. Nothing in this package writes a map. The
// document is the cluster-scoped Policy object named by --cluster-policy
// (its spec is the policy document's spec: the CRD's schema is generated
// from policy/schema.json, so `kubectl apply -f policy.yaml` and
// `infergate policy apply -f policy.yaml` take the same file), plus:
//
//   - per port of each Service of type LoadBalancer with
//     spec.loadBalancerClass infergate.dev/xdp and a VIP in its status, a
//     pool <svc>.<ns>.svc[.<port>] of the Service's EndpointSlice
//     endpoints and a VIP steering the port to it. Ready endpoints are
//     active; terminating ones drain (state draining: established flows
//     stay, no new ones); when none is ready the serving terminating ones
//     take new flows, as kube-proxy does. Each backend's load report is
//     its node's agent (http://<node InternalIP>:<port>/load). Direct
//     server return keeps the destination port, so targetPort must equal
//     port (a different one is logged).
//   - per InferencePool (inference.networking.k8s.io/v1), an L7 pool
//     <name>.<ns>.inferencepool of the ready pods its selector matches, at
//     its target port; model routes of the Policy name it.
//   - on a GPU host, the VIPs of Services with an endpoint on the node as
//     localVIPs, so the decapsulator accepts them.
//
// Because the document is the same bytes for the same cluster, an
// unchanged cluster is never applied twice; the store keeps each applied
// version, so a restarted agent runs the last one before it has seen the
// API server.
//
// # Cost of a change
//
// The source's composer keeps each Service's pools and VIPs with the
// resource versions of the Service and its EndpointSlices they were built
// from, so an endpoint change rebuilds one Service's part; the encoder
// caches struct fields and copies plain strings. Composes start at least
// Config.Debounce apart and events that arrive during one are gathered
// into the next, so a lone change is composed at once and a rollout costs
// one compose per Debounce or per compose, whichever is longer. The
// agent's Apply then decodes, validates and compiles the whole document;
// its reconciler rebuilds and writes only the Maglev tables whose inputs
// changed.
//
// # When the API server is away
//
// Informers keep their caches and relist by themselves when a watch is
// lost (and resync every Config.Resync); nothing is composed until every
// cache has synced, and nothing is applied unless a cached object
// changed, so the data plane stays as it was while the API server is
// away, and a missing Policy object leaves the node running what it runs.
//
// # Status without conflicts
//
// Each node writes its own entry of the Policy's status.nodes (a list
// keyed by node) by server-side apply under its own field manager
// (FieldManager): the applied version, the generation it saw, and the
// problems of a refused document. Writers never overwrite each other.
//
// # LoadBalancer VIPs
//
// Exactly one agent, the holder of the Lease infergate-vip-allocator,
// writes status.loadBalancer.ingress. Allocate keeps no state but that
// status: a Service keeps its address while it is in a VIPPool and no
// older Service holds it, new Services take the lowest free address, and
// a deleted Service's address is free again.
package cluster
