package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var updateSchema = flag.Bool("update", false, "rewrite schema.json")

// TestSchemaUpToDate: the committed schema.json is what the generator makes
// from the current Go types (go test ./policy -update rewrites it).
func TestSchemaUpToDate(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		if err := os.WriteFile("schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("policy/schema.json is stale: run go test ./policy -run TestSchemaUpToDate -update and commit it")
	}
	if bad := schemaFieldKeys(); len(bad) > 0 {
		t.Fatalf("fieldRules name no field: %v", bad)
	}
}

// TestSchemaShape spot-checks the generated schema against the types.
func TestSchemaShape(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs map[string]struct {
			Properties           map[string]map[string]any `json:"properties"`
			Required             []string                  `json:"required"`
			AdditionalProperties *bool                     `json:"additionalProperties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	vip := s.Defs["VIP"]
	if vip.AdditionalProperties == nil || *vip.AdditionalProperties {
		t.Error("VIP allows unknown fields")
	}
	if vip.Properties["port"]["maximum"] != float64(65535) {
		t.Errorf("VIP.port: %v", vip.Properties["port"])
	}
	if want := []string{"name", "address", "port", "pool"}; !equalStrings(vip.Required, want) {
		t.Errorf("VIP required %v, want %v", vip.Required, want)
	}
	if s.Defs["HealthCheck"].Properties["interval"]["type"] != "string" {
		t.Error("durations are not strings")
	}
	if s.Defs["Backend"].Properties["weight"]["default"] != float64(100) {
		t.Error("backend weight default missing")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
