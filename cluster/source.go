package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/infergate/infergate/policy"
)

// Defaults of a Source.
const (
	DefaultPolicyName = "default"
	DefaultResync     = 10 * time.Minute
	// DefaultDebounce gathers a burst of events (a rollout touches many
	// slices) into few applies, started at least DefaultDebounce apart, well
	// inside the one second a change may take to reach the kernel; a lone
	// change is applied at once.
	DefaultDebounce = 50 * time.Millisecond
)

// Config configures a Source.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// NodeName is this node; its entry in each Policy's status is its own.
	NodeName string
	// Role is "balancer" or "gpu-host" (ComposeOptions.Role).
	Role string
	// PolicyName is the cluster-scoped Policy object this node applies.
	PolicyName     string
	LoadReportPort int
	// Resync re-delivers every cached object this often, so a handler
	// that missed something catches up; a lost watch relists by itself.
	Resync   time.Duration
	Debounce time.Duration
	// LoadBalancer runs the VIP allocator while this node holds the Lease;
	// nil leaves Services to another controller.
	LoadBalancer *LeaderConfig
	Log          *slog.Logger
	// OnApplied, when set, is told of each composed document the node
	// accepted and when its first event arrived (tests and benchmarks).
	OnApplied func(version string, doc *policy.Document, firstEvent time.Time)
}

// Source feeds the agent from the cluster (agent.Source).
type Source struct {
	cfg Config
	log *slog.Logger

	factory    informers.SharedInformerFactory
	dfactory   dynamicinformer.DynamicSharedInformerFactory
	services   cache.SharedIndexInformer
	slices     cache.SharedIndexInformer
	nodes      cache.SharedIndexInformer
	pods       cache.SharedIndexInformer
	policies   cache.SharedIndexInformer
	vippools   cache.SharedIndexInformer
	infpools   cache.SharedIndexInformer
	kickc      chan struct{}
	mu         sync.Mutex
	firstEvent time.Time
	// composer remembers each Service's part of the last document, so an
	// endpoint change recomposes one Service (used by Run's loop only).
	composer composer
}

// NewSource sets up the informers; Run starts them.
func NewSource(cfg Config) (*Source, error) {
	if cfg.Client == nil || cfg.Dynamic == nil {
		return nil, errors.New("cluster source: Client and Dynamic are required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("cluster source: the node name is required (--node-name, from the downward API)")
	}
	if cfg.PolicyName == "" {
		cfg.PolicyName = DefaultPolicyName
	}
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Source{cfg: cfg, log: cfg.Log, kickc: make(chan struct{}, 1)}
	s.factory = informers.NewSharedInformerFactory(cfg.Client, cfg.Resync)
	s.dfactory = dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, cfg.Resync)
	s.services = s.factory.Core().V1().Services().Informer()
	s.slices = s.factory.Discovery().V1().EndpointSlices().Informer()
	s.nodes = s.factory.Core().V1().Nodes().Informer()
	s.policies = s.dfactory.ForResource(PolicyGVR).Informer()
	s.vippools = s.dfactory.ForResource(VIPPoolGVR).Informer()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.kick() },
		UpdateFunc: func(any, any) { s.kick() },
		DeleteFunc: func(any) { s.kick() },
	}
	for _, inf := range []cache.SharedIndexInformer{s.services, s.slices, s.nodes, s.policies} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("cluster source: %w", err)
		}
	}
	return s, nil
}

// kick asks for a compose; a burst of events makes one.
func (s *Source) kick() {
	s.mu.Lock()
	if s.firstEvent.IsZero() {
		s.firstEvent = time.Now()
	}
	s.mu.Unlock()
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// hasInferencePools asks discovery whether the InferencePool CRD is
// installed; without it the pool informer would never sync.
func (s *Source) hasInferencePools() bool {
	rs, err := s.cfg.Client.Discovery().ServerResourcesForGroupVersion(InferencePoolGVR.GroupVersion().String())
	if err != nil {
		return false
	}
	for _, r := range rs.APIResources {
		if r.Name == InferencePoolGVR.Resource {
			return true
		}
	}
	return false
}

// Run starts the informers, waits until every cache has synced (nothing
// is applied from a partial view: a node started while the API server is
// away keeps its stored policy), then composes and applies on every change
// until ctx ends. A refused document leaves the data plane as it was and
// is reported in the Policy's status; so is an accepted one.
func (s *Source) Run(ctx context.Context, apply func(ctx context.Context, doc []byte) (string, error)) error {
	if s.hasInferencePools() {
		s.infpools = s.dfactory.ForResource(InferencePoolGVR).Informer()
		s.pods = s.factory.Core().V1().Pods().Informer()
		h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { s.kick() }, UpdateFunc: func(any, any) { s.kick() }, DeleteFunc: func(any) { s.kick() }}
		for _, inf := range []cache.SharedIndexInformer{s.infpools, s.pods} {
			if _, err := inf.AddEventHandler(h); err != nil {
				return fmt.Errorf("cluster source: %w", err)
			}
		}
	} else {
		s.log.Info("the InferencePool CRD is not installed; InferencePools are not watched (restart the agent once it is)")
	}
	s.factory.Start(ctx.Done())
	s.dfactory.Start(ctx.Done())
	defer s.factory.Shutdown()
	defer s.dfactory.Shutdown()
	synced := []cache.InformerSynced{s.services.HasSynced, s.slices.HasSynced, s.nodes.HasSynced, s.policies.HasSynced, s.vippools.HasSynced}
	if s.infpools != nil {
		synced = append(synced, s.infpools.HasSynced, s.pods.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	s.log.Info("cluster caches synced", "policy", s.cfg.PolicyName, "node", s.cfg.NodeName)
	if s.cfg.LoadBalancer != nil {
		lb := newLBController(s, *s.cfg.LoadBalancer)
		go lb.run(ctx)
	}
	st := newStatusWriter(s.cfg.Dynamic, s.cfg.NodeName, s.log)
	var last []byte
	var lastStart time.Time
	s.kick()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.kickc:
		}
		// Composes start at least Debounce apart, and events that arrive
		// while one runs are gathered into the next: a change is composed
		// at once unless the last compose started less than Debounce ago,
		// a burst (a rollout touches many slices) costs one compose per
		// Debounce or per compose time, whichever is longer, and its last
		// change waits at most Debounce plus two composes.
		if wait := s.cfg.Debounce - time.Since(lastStart); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		select {
		case <-s.kickc:
		default:
		}
		s.mu.Lock()
		first := s.firstEvent
		s.firstEvent = time.Time{}
		s.mu.Unlock()
		lastStart = time.Now()
		last = s.once(ctx, apply, st, last, first)
	}
}

// once composes and, when the document changed, applies it; it returns
// the last document the node accepted.
func (s *Source) once(ctx context.Context, apply func(context.Context, []byte) (string, error), st *statusWriter, last []byte, first time.Time) []byte {
	pobj, err := s.policyObject()
	if err != nil {
		s.log.Warn("no Policy object to apply; the node keeps what it runs", "policy", s.cfg.PolicyName, "err", err)
		return last
	}
	base, err := policyDocument(pobj)
	if err != nil {
		st.report(ctx, pobj, "", annotatePaths(err, &policy.Document{}))
		return last
	}
	snap := s.snapshot()
	snap.Policy = base
	doc, warnings := s.composer.compose(snap, ComposeOptions{Role: s.cfg.Role, NodeName: s.cfg.NodeName, LoadReportPort: s.cfg.LoadReportPort})
	for _, w := range warnings {
		s.log.Warn("cluster object left out of the policy", "why", w)
	}
	b, err := marshalDocument(doc)
	if err != nil {
		st.report(ctx, pobj, "", err)
		return last
	}
	if bytes.Equal(b, last) {
		st.report(ctx, pobj, st.lastVersion(), nil)
		return last
	}
	version, err := apply(ctx, b)
	if err != nil {
		s.log.Error("the node refused the cluster's desired state; it keeps what it runs", "err", err)
		st.report(ctx, pobj, "", annotatePaths(err, doc))
		return last
	}
	if s.cfg.OnApplied != nil {
		s.cfg.OnApplied(version, doc, first)
	}
	st.report(ctx, pobj, version, nil)
	return b
}

func (s *Source) policyObject() (*unstructured.Unstructured, error) {
	obj, ok, err := s.policies.GetStore().GetByKey(s.cfg.PolicyName)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierrors.NewNotFound(PolicyGVR.GroupResource(), s.cfg.PolicyName)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("policy %s: unexpected %T in cache", s.cfg.PolicyName, obj)
	}
	return u, nil
}

// snapshot reads the caches.
func (s *Source) snapshot() Snapshot {
	var snap Snapshot
	for _, o := range s.services.GetStore().List() {
		if svc, ok := o.(*corev1.Service); ok && Ours(svc) {
			snap.Services = append(snap.Services, svc)
		}
	}
	ours := map[string]bool{}
	for _, svc := range snap.Services {
		ours[svc.Namespace+"/"+svc.Name] = true
	}
	for _, o := range s.slices.GetStore().List() {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok && ours[es.Namespace+"/"+es.Labels[discoveryv1.LabelServiceName]] {
			snap.Slices = append(snap.Slices, es)
		}
	}
	for _, o := range s.nodes.GetStore().List() {
		if n, ok := o.(*corev1.Node); ok {
			snap.Nodes = append(snap.Nodes, n)
		}
	}
	if s.infpools != nil {
		for _, o := range s.infpools.GetStore().List() {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			var ip infv1.InferencePool
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ip); err != nil {
				s.log.Warn("inferencepool left out", "name", u.GetNamespace()+"/"+u.GetName(), "err", err)
				continue
			}
			snap.Pools = append(snap.Pools, &ip)
		}
		for _, o := range s.pods.GetStore().List() {
			if p, ok := o.(*corev1.Pod); ok {
				snap.Pods = append(snap.Pods, p)
			}
		}
	}
	return snap
}

// vipPools lists the VIPPool objects.
func (s *Source) vipPools() []VIPPool {
	var out []VIPPool
	for _, o := range s.vippools.GetStore().List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		p, err := vipPool(u)
		if err != nil {
			s.log.Warn("vippool left out", "err", err)
			continue
		}
		out = append(out, p)
	}
	return out
}
