package kubetest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdWait bounds how long a new CRD takes to be established.
const crdWait = 60 * time.Second

// WriteKubeconfig writes a kubeconfig for the administrator to path, for a
// program run outside the test (an agent started as a process). server is
// the URL that program reaches the API server at (the test may relay it
// into a network namespace); tlsServerName is the name the serving
// certificate is checked against when server's host is not in it (the
// certificate names localhost and the loopback addresses).
func (s *Server) WriteKubeconfig(path, server, tlsServerName string) error {
	c := clientcmdapi.NewConfig()
	c.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: s.cfg.CAData, TLSServerName: tlsServerName}
	c.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{Token: s.cfg.BearerToken}
	c.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: adminUser}
	c.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// InstallCRDs creates the CustomResourceDefinitions in the YAML files (one
// object each) and waits until every one is established, so objects of
// their kinds can be created at once.
func (s *Server) InstallCRDs(t testing.TB, files ...string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(s.Config())
	if err != nil {
		t.Fatal(err)
	}
	InstallCRDs(t, dyn, files...)
}

// InstallCRDs is Server.InstallCRDs through a client the test already
// has.
func InstallCRDs(t testing.TB, dyn dynamic.Interface, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crdWait)
	defer cancel()
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("install %s: %v", f, err)
		}
		names = append(names, u.GetName())
	}
	for _, n := range names {
		for !established(ctx, dyn, n) {
			if ctx.Err() != nil {
				t.Fatalf("CRD %s not established within %s", n, crdWait)
			}
			time.Sleep(pollInterval)
		}
	}
}

func established(ctx context.Context, dyn dynamic.Interface, name string) bool {
	u, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
