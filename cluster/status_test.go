package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
)

// A refused document's problems name the cluster pool or VIP behind an
// index (the composed document's indices are not the Policy object's), and
// lose lines of the composed document.
func TestAnnotatePaths(t *testing.T) {
	doc := &policy.Document{Spec: policy.Spec{Pools: []policy.Pool{{Name: "base"}, {Name: "llm.ml.svc"}},
		Dataplane: policy.Dataplane{VIPs: []policy.VIP{{Name: "llm.ml.svc"}}}}}
	err := annotatePaths(&policy.ValidationError{Problems: []policy.Problem{
		{Path: "spec.pools[1].backends[0]", Message: "no route", Line: 40},
		{Path: "spec.dataplane.vips[0]", Message: "duplicate"},
		{Path: "spec.gateway", Message: "other"},
	}}, doc)
	got := statusErrors(err)
	want := []string{"spec.pools[1].backends[0]: (llm.ml.svc) no route", "spec.dataplane.vips[0]: (llm.ml.svc) duplicate", "spec.gateway: other"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// What one node writes is bounded: at most maxStatusErrors lines, the last
// saying how many more, each at most maxStatusErrorLen bytes.
func TestStatusErrorsBounded(t *testing.T) {
	var ps []policy.Problem
	for i := range 100 {
		ps = append(ps, policy.Problem{Path: fmt.Sprintf("spec.pools[%d]", i), Message: strings.Repeat("x", 1000)})
	}
	got := statusErrors(&policy.ValidationError{Problems: ps})
	if len(got) != maxStatusErrors || got[len(got)-1] != "... and 69 more" {
		t.Fatalf("%d lines, last %q", len(got), got[len(got)-1])
	}
	for _, s := range got {
		if len(s) > maxStatusErrorLen {
			t.Fatalf("line of %d bytes", len(s))
		}
	}
	if got := statusErrors(errors.New("boom")); len(got) != 1 || got[0] != "boom" {
		t.Fatalf("%q", got)
	}
}
