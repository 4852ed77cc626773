package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func clientset(t *testing.T, c *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestRestartKeepsStore: objects written before a restart are read back
// after it from the same etcd, the server is unreachable while stopped, and
// a client made before the restart works again after it (same URL, same
// certificate, same token).
func TestRestartKeepsStore(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := clientset(t, s.Config())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest-restart"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: ns.Name}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}

	s.StopAPIServer()
	if s.Ready(ctx) {
		t.Fatal("the API server still answers after StopAPIServer")
	}
	short, scancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := cs.CoreV1().ConfigMaps(ns.Name).Get(short, "kept", metav1.GetOptions{})
	scancel()
	if err == nil {
		t.Fatal("a read succeeded while the API server was stopped")
	}

	s.StartAPIServer(t)
	got, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kept", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if got.Data["k"] != "v" {
		t.Fatalf("after restart the ConfigMap holds %v, want k=v", got.Data)
	}
	s.Restart(t)
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("read after Restart: %v", err)
	}
}

// TestRBACServiceAccount: with RBAC on, a ServiceAccount is refused what no
// rule grants and allowed what its Role grants, while the administrator is
// allowed everything.
func TestRBACServiceAccount(t *testing.T) {
	s := StartWith(t, Options{RBAC: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := clientset(t, s.Config())
	const ns = "kubetest-rbac"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := clientset(t, s.ServiceAccount(ns, "reader"))
	if _, err := sa.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list configmaps without a role: err %v, want Forbidden", err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}}}}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cm-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer reads roles through an informer: allow it a moment.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := sa.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("list configmaps with the role bound: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list secrets, which the role does not grant: err %v, want Forbidden", err)
	}
}

// TestMissingBinary: a missing binary is reported with the way to build it;
// under INFERGATE_REQUIRE_PRIVILEGED=1 Start would fail the test with it
// (privtest.Skip), never skip.
func TestMissingBinary(t *testing.T) {
	t.Setenv(BinaryEnv, filepath.Join(t.TempDir(), "absent"))
	_, err := Binary()
	if err == nil {
		t.Fatal("Binary found a file that does not exist")
	}
	if want := "scripts/kube-apiserver.sh"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say how to build the binary (%s)", err, want)
	}
	noexec := filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(noexec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinaryEnv, noexec)
	if _, err := Binary(); err == nil {
		t.Fatal("Binary accepted a file that is not executable")
	}
}

// TestServerOutlivesStartingThread: the servers are started from a
// goroutine that locked its OS thread and returns locked, so the Go
// runtime ends that thread (as it does after a test enters a network
// namespace on a thread of its own). They must keep running: their
// Pdeathsig is tied to the thread that forked them, which the harness
// keeps for their lifetime.
func TestServerOutlivesStartingThread(t *testing.T) {
	var s *Server
	for s == nil && !t.Failed() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			// The main thread is never ended (it is parked instead): try
			// again on another.
			if syscall.Gettid() == syscall.Getpid() {
				runtime.UnlockOSThread()
				return
			}
			// Never unlocked: the thread ends with the goroutine.
			s = Start(t)
		}()
		<-done
	}
	if t.Failed() || s == nil {
		t.FailNow()
	}
	// The thread's end and the signal it brings are asynchronous: ask a
	// few times over two seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if !s.Ready(ctx) {
			t.Fatalf("the API server stopped answering once the thread that started it ended; its log ends:\n%s", tail(s.LogFile, 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
