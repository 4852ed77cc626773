package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/infergate/infergate/cluster"
)

// Where the agent's desired state comes from.
const (
	sourceFile    = "file"
	sourceCluster = "cluster"
)

// clusterFlags are the agent's flags for --source=cluster.
type clusterFlags struct {
	source, kubeconfig, nodeName, policyName, leaseNamespace string
	loadReportPort                                           int
	allocateVIPs                                             bool
}

func (c *clusterFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.source, "source", sourceFile, "desired state: file (--policy-file and 'policy apply') or cluster (the Policy object, LoadBalancer Services, EndpointSlices and InferencePools)")
	f.StringVar(&c.kubeconfig, "kubeconfig", "", "cluster source: kubeconfig file (default: in-cluster service account)")
	f.StringVar(&c.nodeName, "node-name", os.Getenv("NODE_NAME"), "cluster source: this node's name (env NODE_NAME)")
	f.StringVar(&c.policyName, "cluster-policy", cluster.DefaultPolicyName, "cluster source: the cluster-scoped Policy object to apply")
	f.StringVar(&c.leaseNamespace, "lease-namespace", os.Getenv("POD_NAMESPACE"), "cluster source: namespace of the VIP allocator's Lease (env POD_NAMESPACE)")
	f.BoolVar(&c.allocateVIPs, "allocate-vips", true, "cluster source: take part in the election of the LoadBalancer VIP allocator")
	f.IntVar(&c.loadReportPort, "cluster-load-report-port", 9400, "cluster source: port of each node's GPU load report, for Service backends (0: no load reports)")
}

// build returns the cluster source, or nil for --source=file.
func (c *clusterFlags) build(role string, log *slog.Logger) (*cluster.Source, error) {
	switch c.source {
	case sourceFile:
		return nil, nil
	case sourceCluster:
	default:
		return nil, fmt.Errorf("--source %q: want file or cluster", c.source)
	}
	var rc *rest.Config
	var err error
	if c.kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--source=cluster: %w", err)
	}
	rc.UserAgent = "infergate-agent"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("--source=cluster: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("--source=cluster: %w", err)
	}
	cfg := cluster.Config{Client: cs, Dynamic: dyn, NodeName: c.nodeName, Role: role, PolicyName: c.policyName,
		LoadReportPort: c.loadReportPort, Log: log}
	if c.allocateVIPs {
		if c.leaseNamespace == "" {
			return nil, fmt.Errorf("--allocate-vips needs --lease-namespace (or env POD_NAMESPACE)")
		}
		cfg.LoadBalancer = &cluster.LeaderConfig{Namespace: c.leaseNamespace, Identity: c.nodeName}
	}
	return cluster.NewSource(cfg)
}
