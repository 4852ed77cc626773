package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/infergate/infergate/policy"
)

// The custom resources infergate defines, and the InferencePool it reads.
var (
	PolicyGVR        = schema.GroupVersionResource{Group: "infergate.dev", Version: "v1alpha1", Resource: "policies"}
	VIPPoolGVR       = schema.GroupVersionResource{Group: "infergate.dev", Version: "v1alpha1", Resource: "vippools"}
	InferencePoolGVR = schema.GroupVersionResource{Group: "inference.networking.k8s.io", Version: "v1", Resource: "inferencepools"}
)

// policyDocument turns a Policy object into the policy document it
// stands for: its name, labels and spec, nothing else of the object's
// metadata. It goes through policy.Decode, the file's own strict decoder,
// so the two doors refuse the same things.
func policyDocument(u *unstructured.Unstructured) (*policy.Document, error) {
	m := map[string]any{
		"apiVersion": policy.APIVersion,
		"kind":       policy.Kind,
		"metadata":   map[string]any{"name": u.GetName()},
	}
	if l := u.GetLabels(); len(l) > 0 {
		m["metadata"].(map[string]any)["labels"] = l
	}
	if spec, ok := u.Object["spec"]; ok {
		m["spec"] = spec
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", u.GetName(), err)
	}
	return policy.Decode(bytes.NewReader(b))
}

// vipPool parses a VIPPool object; a CIDR that does not parse is an error
// (the CRD's validation lets only well-formed strings through, but the
// object may predate it).
func vipPool(u *unstructured.Unstructured) (VIPPool, error) {
	p := VIPPool{Name: u.GetName()}
	cidrs, _, err := unstructured.NestedStringSlice(u.Object, "spec", "cidrs")
	if err != nil {
		return p, fmt.Errorf("vippool %s: spec.cidrs: %w", u.GetName(), err)
	}
	for i, c := range cidrs {
		pfx, err := parsePrefix(c)
		if err != nil {
			return p, fmt.Errorf("vippool %s: spec.cidrs[%d]: %w", u.GetName(), i, err)
		}
		p.CIDRs = append(p.CIDRs, pfx)
	}
	return p, nil
}
