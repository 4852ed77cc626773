package cluster

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/infergate/infergate/internal/kubetest"
)

// A change after a quiet spell is composed at once, not after the
// debounce: with a debounce of an hour, the first document (the caches'
// first sync is such a change) still arrives.
func TestSourceLoneChangeSkipsDebounce(t *testing.T) {
	srv := kubetest.Start(t)
	cs, dyn := clients(t, srv.Config())
	installCRDs(t, dyn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := dyn.Resource(PolicyGVR).Create(ctx, policyObject("default", baseSpec), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var applied atomic.Int32
	src, err := NewSource(Config{Client: cs, Dynamic: dyn, NodeName: "lb-1", Role: "balancer", Debounce: time.Hour,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = src.Run(ctx, func(context.Context, []byte) (string, error) { applied.Add(1); return "v1", nil })
	}()
	eventually(t, time.Minute, "the first document, though the debounce is an hour", func() bool { return applied.Load() > 0 })
}
