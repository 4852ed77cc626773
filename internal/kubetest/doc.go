// Package kubetest runs a real Kubernetes API server for tests: Debian's
// etcd-server as its store and a kube-apiserver binary built from the
// k8s.io/kubernetes module at a pinned release (scripts/kube-apiserver.sh),
// both on loopback ports chosen at start, with every file they need (a
// serving certificate, a token file, a service-account signing key pair,
// etcd's data) in the test's temporary directory.
//
// Why a real server and not client-go's fake clientset: what a controller or
// a manifest has to get right is the server's behaviour (validation,
// defaulting, server-side dry-run, CRD schemas, status subresources,
// resourceVersion conflicts, watches that end when the server goes away),
// and a fake has none of it.
//
// The binary is found at $INFERGATE_KUBE_APISERVER, else at
// DefaultBinary (where scripts/kube-apiserver.sh puts it). When it or etcd
// is missing the test skips with the command that provides it, or fails
// under INFERGATE_REQUIRE_PRIVILEGED=1 (CI builds the binary before the
// tests), as internal/privtest does for every tool.
//
// The test authenticates with a bearer token of a user in system:masters.
// Authorization is AlwaysAllow by default; Options.RBAC turns on the RBAC
// authorizer so a test can check what a ServiceAccount's rules allow, by
// impersonating it (Server.As). WriteKubeconfig hands the same credentials
// to a program the test runs as a process (the agent with
// --source=cluster), at whatever URL that program reaches the server by.
//
// Both servers die with the test binary (Pdeathsig). The kernel sends that
// signal when the forking *thread* ends, and the Go runtime ends a thread
// whenever a goroutine that locked it returns locked, as tests entering a
// network namespace do; so the harness forks each server from a thread of
// its own, kept until the server exits.
package kubetest
