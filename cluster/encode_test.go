package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/infergate/infergate/policy"
)

// The JSON the cluster source applies decodes to what policy.Marshal's
// YAML decodes to, for the fixtures holding every field of the policy and
// for a composed cluster document: same compiled version, same document.
func TestMarshalDocumentAsPolicyMarshal(t *testing.T) {
	var docs []*policy.Document
	for _, f := range []string{"every-field.yaml", "full.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "policy", "testdata", "good", f))
		if err != nil {
			t.Fatal(err)
		}
		d, err := policy.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		docs = append(docs, d)
	}
	composed, _ := Compose(benchSnapshot(1000), ComposeOptions{Role: "balancer"})
	docs = append(docs, composed)
	// A zero whose absence would read back as a default.
	zero := *docs[0]
	zero.Spec.Gateway.Models = append([]policy.Model(nil), zero.Spec.Gateway.Models...)
	zero.Spec.Gateway.Models[0].Retries = 0
	docs = append(docs, &zero)
	for i, d := range docs {
		y, err := policy.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		j, err := marshalDocument(d)
		if err != nil {
			t.Fatal(err)
		}
		dy, err := policy.Decode(bytes.NewReader(y))
		if err != nil {
			t.Fatalf("doc %d yaml: %v", i, err)
		}
		dj, err := policy.Decode(bytes.NewReader(j))
		if err != nil {
			t.Fatalf("doc %d json: %v", i, err)
		}
		ry, _ := policy.Marshal(dy)
		rj, _ := policy.Marshal(dj)
		if !bytes.Equal(ry, rj) {
			t.Fatalf("doc %d: JSON and YAML read back differently", i)
		}
		cy, err := policy.Compile(dy)
		if err != nil {
			t.Fatal(err)
		}
		cj, err := policy.Compile(dj)
		if err != nil {
			t.Fatal(err)
		}
		if cy.Version != cj.Version {
			t.Fatalf("doc %d: versions %s and %s", i, cy.Version, cj.Version)
		}
	}
}
