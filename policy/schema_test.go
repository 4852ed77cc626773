package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

var updateSchema = flag.Bool("update", false, "rewrite schema.json")

// docComments reads the doc comments of the schema types from types.go:
// "Type" for a type, "Type.Field" for a field.
func docComments(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "types.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	clean := func(cg ...*ast.CommentGroup) string {
		var parts []string
		for _, c := range cg {
			if c != nil {
				parts = append(parts, strings.Join(strings.Fields(c.Text()), " "))
			}
		}
		return strings.TrimSpace(strings.Join(parts, " "))
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			doc := ts.Doc
			if doc == nil {
				doc = gd.Doc
			}
			out[ts.Name.Name] = clean(doc)
			for _, field := range st.Fields.List {
				for _, n := range field.Names {
					if d := clean(field.Doc, field.Comment); d != "" {
						out[ts.Name.Name+"."+n.Name] = d
					}
				}
			}
		}
	}
	return out
}

// TestSchemaUpToDate: the committed (and embedded) schema.json is what the
// generator makes from the current Go types and comments; -update rewrites it.
func TestSchemaUpToDate(t *testing.T) {
	got, err := generateSchema(docComments(t))
	if err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		if err := os.WriteFile("schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, schemaJSON) {
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
			Description          string                    `json:"description"`
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
	if !strings.HasPrefix(vip.Description, "VIP is a virtual service address") {
		t.Errorf("VIP description %q", vip.Description)
	}
	if d, _ := vip.Properties["forwarding"]["description"].(string); !strings.Contains(d, "direct server return") {
		t.Errorf("VIP.forwarding description %q", d)
	}
	if s.Defs["HealthCheck"].Properties["interval"]["type"] != "string" {
		t.Error("durations are not strings")
	}
	if s.Defs["Backend"].Properties["weight"]["default"] != float64(100) {
		t.Error("backend weight default missing")
	}
	if s.Defs["Dataplane"].Properties["xdpMode"]["default"] != "native" {
		t.Error("xdpMode default missing")
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
