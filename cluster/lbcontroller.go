package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// The VIP allocator writes status.loadBalancer.ingress of Services. It has
// exactly one writer: the agent holding a coordination.k8s.io Lease
// (LeaseName in LeaderConfig.Namespace). Every agent runs the election;
// the holder allocates, the others only read the status it writes. The
// allocator keeps no memory but the Services' status (Allocate), so a new
// leader carries on where the old one stopped, and a leader that lost its
// Lease mid-write can at worst write what the next one writes too.

// LeaseName is the Lease the agents elect the VIP allocator by.
const LeaseName = "infergate-vip-allocator"

// LeaderConfig is the election of the VIP allocator.
type LeaderConfig struct {
	Namespace string
	// Identity is this agent's name in the Lease (the node name).
	Identity                                  string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

type lbController struct {
	s     *Source
	cfg   LeaderConfig
	log   *slog.Logger
	kickc chan struct{}
}

func newLBController(s *Source, cfg LeaderConfig) *lbController {
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	return &lbController{s: s, cfg: cfg, log: s.log, kickc: make(chan struct{}, 1)}
}

func (c *lbController) kick() {
	select {
	case c.kickc <- struct{}{}:
	default:
	}
}

// run takes part in the election until ctx ends, allocating while leader.
func (c *lbController) run(ctx context.Context) {
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { c.kick() }, UpdateFunc: func(any, any) { c.kick() }, DeleteFunc: func(any) { c.kick() }}
	for _, inf := range []cache.SharedIndexInformer{c.s.services, c.s.vippools} {
		if _, err := inf.AddEventHandler(h); err != nil {
			c.log.Error("VIP allocator not started", "err", err)
			return
		}
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.cfg.Namespace, Name: LeaseName},
		Client:     c.s.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.cfg.Identity},
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock: lock, ReleaseOnCancel: true, Name: LeaseName,
			LeaseDuration: c.cfg.LeaseDuration, RenewDeadline: c.cfg.RenewDeadline, RetryPeriod: c.cfg.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					c.log.Info("this node allocates LoadBalancer VIPs", "lease", c.cfg.Namespace+"/"+LeaseName)
					c.allocateLoop(ctx)
				},
				OnStoppedLeading: func() { c.log.Info("no longer the VIP allocator") },
			},
		})
	}
}

func (c *lbController) allocateLoop(ctx context.Context) {
	c.kick()
	t := time.NewTicker(c.s.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kickc:
		case <-t.C:
		}
		c.allocate(ctx)
	}
}

// allocate writes every Service's decided VIP into its status.
func (c *lbController) allocate(ctx context.Context) {
	var svcs []*corev1.Service
	for _, o := range c.s.services.GetStore().List() {
		if svc, ok := o.(*corev1.Service); ok && Ours(svc) {
			svcs = append(svcs, svc)
		}
	}
	alloc := Allocate(c.s.vipPools(), svcs)
	for _, svc := range svcs {
		a := alloc[svc.Namespace+"/"+svc.Name]
		var want []corev1.LoadBalancerIngress
		if a.VIP.IsValid() {
			// ipMode VIP: the address is delivered to the node with the
			// VIP as destination, as XDP steering needs.
			mode := corev1.LoadBalancerIPModeVIP
			want = []corev1.LoadBalancerIngress{{IP: a.VIP.String(), IPMode: &mode}}
		} else {
			c.log.Warn("no VIP for service", "service", svc.Namespace+"/"+svc.Name, "why", a.Err)
		}
		if ingressEqual(svc.Status.LoadBalancer.Ingress, want) {
			continue
		}
		cp := svc.DeepCopy()
		cp.Status.LoadBalancer.Ingress = want
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.s.cfg.Client.CoreV1().Services(svc.Namespace).UpdateStatus(cctx, cp, metav1.UpdateOptions{FieldManager: "infergate-vip-allocator"})
		cancel()
		if err != nil {
			// A conflict means a newer Service came in; its event brings
			// another pass.
			c.log.Warn("writing a service's VIP failed", "service", svc.Namespace+"/"+svc.Name, "err", err)
			continue
		}
		c.log.Info("service VIP", "service", svc.Namespace+"/"+svc.Name, "vip", a.VIP)
	}
}

func ingressEqual(have, want []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(have, want, func(a, b corev1.LoadBalancerIngress) bool {
		aa, _ := netip.ParseAddr(a.IP)
		ba, _ := netip.ParseAddr(b.IP)
		return aa == ba && a.Hostname == b.Hostname && ptrOr(a.IPMode, "") == ptrOr(b.IPMode, "")
	})
}
