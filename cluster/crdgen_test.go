package cluster

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/crds from policy/schema.json")

// The committed CRDs are what the policy's schema gives (regenerate with
// -update after changing the policy's types).
func TestCRDsUpToDate(t *testing.T) {
	files, err := CRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "deploy", "crds")
	for name, want := range files {
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./cluster -run TestCRDsUpToDate -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s is stale: go test ./cluster -run TestCRDsUpToDate -update", path)
		}
	}
}

// The Policy CRD carries the policy schema's rules: a backend weight's
// maximum, the VIP port range, an enum from a const, and no keyword the
// API server refuses.
func TestCRDCarriesPolicyRules(t *testing.T) {
	files, err := CRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	s := string(files["policy.yaml"])
	for _, want := range []string{"maximum: 10000", "maximum: 65535", "x-kubernetes-list-map-keys", "x-kubernetes-list-type: set"} {
		if !strings.Contains(s, want) {
			t.Errorf("policy CRD lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^\s+default:`).MatchString(s) {
		t.Error("policy CRD holds a default")
	}
	for _, bad := range []string{"$ref", "$defs", "uniqueItems", "additionalProperties: false", "const:"} {
		if strings.Contains(s, bad) {
			t.Errorf("policy CRD holds %q, which a structural schema may not", bad)
		}
	}
}
