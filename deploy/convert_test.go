package deploy

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// jsonMap turns a decoded YAML object into the JSON-typed map that
// client-go's unstructured objects hold (int64 and float64 numbers).
func jsonMap(t testing.TB, o object) map[string]any {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatalf("%s %s: %v", o.kind(), o.name(), err)
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatalf("%s %s: %v", o.kind(), o.name(), err)
	}
	return u.Object
}
