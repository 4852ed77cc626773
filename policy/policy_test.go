package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func loadFile(t *testing.T, path string) (*Document, *Compiled) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, c, err := Load(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc, c
}

// TestRoundTrip: YAML -> compiled -> YAML -> compiled is stable, and the
// canonical YAML reproduces itself byte for byte.
func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no good examples")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, c1 := loadFile(t, file)
			y1, err := Marshal(c1.Document())
			if err != nil {
				t.Fatal(err)
			}
			_, c2, err := Load(bytes.NewReader(y1))
			if err != nil {
				t.Fatalf("reloading canonical YAML: %v\n%s", err, y1)
			}
			if c1.Version != c2.Version {
				t.Errorf("version changed across round trip: %s -> %s", c1.Version, c2.Version)
			}
			if !reflect.DeepEqual(c1, c2) {
				t.Errorf("compiled form changed across round trip:\n%#v\n%#v", c1, c2)
			}
			y2, err := Marshal(c2.Document())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(y1, y2) {
				t.Errorf("canonical YAML not stable:\n%s\n---\n%s", y1, y2)
			}
		})
	}
}

// TestDecodeMarshalIdentity: a decoded document marshals to YAML that
// decodes to the same document (weights of 0 survive).
func TestDecodeMarshalIdentity(t *testing.T) {
	doc, _ := loadFile(t, "testdata/good/full.yaml")
	y, err := Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	doc2, err := Decode(bytes.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	doc.pos, doc2.pos = nil, nil
	if !reflect.DeepEqual(doc, doc2) {
		t.Fatalf("documents differ:\n%#v\n%#v", doc, doc2)
	}
	if w := doc2.Spec.Pools[0].Backends[2].Weight; w != 0 {
		t.Fatalf("explicit weight 0 became %d", w)
	}
	if w := doc2.Spec.Pools[0].Backends[1].Weight; w != DefaultBackendWeight {
		t.Fatalf("absent weight became %d, want %d", w, DefaultBackendWeight)
	}
}

func TestCompiledContent(t *testing.T) {
	_, c := loadFile(t, "testdata/good/full.yaml")
	if c.Name != "demo" || len(c.Version) != versionHexLen {
		t.Fatalf("name %q version %q", c.Name, c.Version)
	}
	dp := c.Dataplane
	if dp.XDPMode != XDPModeAuto || dp.DefaultDeny {
		t.Errorf("xdp mode %q default deny %v", dp.XDPMode, dp.DefaultDeny)
	}
	if got := dp.Rules[2].Prefixes[0].String(); got != "198.18.10.7/32" {
		t.Errorf("host source compiled to %s", got)
	}
	if dp.Rules[1].Protocol != ProtoTCP || dp.Rules[1].Ports[0] != 22 || !dp.Rules[1].Deny {
		t.Errorf("rule 1: %+v", dp.Rules[1])
	}
	if dp.Rules[0].Protocol != ProtoAny {
		t.Errorf("default rule protocol %d", dp.Rules[0].Protocol)
	}
	if cl := dp.Classes[1]; cl.PacketBurst != 200000 || cl.NewConnBurst != 2000 {
		t.Errorf("burst defaults: %+v", cl)
	}
	if v := dp.VIPs[1]; v.Protocol != ProtoTCP || v.Forwarding != ForwardIPIP || v.Pool != 2 || !v.Address.Is6() {
		t.Errorf("vip defaults: %+v", v)
	}
	if v := dp.VIPs[1]; v.NewFlowBudget != DefaultNewFlowBudget || v.NewFlowBudgetBurst != DefaultNewFlowBudget {
		t.Errorf("new-flow budget defaults: %+v", v)
	}
	if ds := fmt.Sprint(dp.DecapSources); ds != "[198.18.1.2/32 198.19.200.0/24 2001:db8:1::2/128]" {
		t.Errorf("decap sources %s", ds)
	}
	b := c.Pools[0].Backends
	if b[1].Weight != 100 || b[2].Weight != 0 || !b[2].Draining || b[0].Port != 8000 {
		t.Errorf("backends: %+v", b)
	}
	if hc := c.Pools[1].HealthCheck; hc.HTTP || hc.Interval != DefaultHealthInterval || hc.Rise != DefaultHealthRise {
		t.Errorf("health check defaults: %+v", hc)
	}
	g := c.Gateway
	if g.Keys[1].Tenant != 1 || g.Keys[0].Hash[0] != 0xd4 {
		t.Errorf("keys: %+v", g.Keys)
	}
	m := g.Models[0]
	if m.Routes[0].Pool != 0 || m.Routes[0].Provider != -1 || m.Routes[1].Pool != 1 || m.Fallback[0].Provider != 0 || m.Fallback[0].Pool != -1 {
		t.Errorf("routes: %+v fallback %+v", m.Routes, m.Fallback)
	}
	if m.Timeouts.TimeToFirstToken.Seconds() != 10 || m.Timeouts.Connect.Seconds() != 2 || m.Retries != 1 {
		t.Errorf("model timeouts inherit gateway's: %+v", m.Timeouts)
	}
	if g.Models[1].Encoding != EncodingO200K || g.Models[1].Retries != DefaultRetries || g.Models[1].Routes[0].Weight != DefaultRouteWeight {
		t.Errorf("model defaults: %+v", g.Models[1])
	}
	if g.Tenants[0].Limits.BudgetWindow.D().Hours() != 24 || g.JWT[0].TenantClaim != "org" {
		t.Errorf("gateway: %+v", g)
	}
}

// TestVersionIgnoresSpelling: the same policy spelt differently (defaults
// written out, /32 on a host) has the same version; a real change does not.
func TestVersionIgnoresSpelling(t *testing.T) {
	a := minimal + `
  dataplane:
    firewall:
      rules:
        - {name: r, action: deny, sources: [198.18.0.1]}
`
	b := minimal + `
  dataplane:
    xdpMode: native
    firewall:
      defaultAction: allow
      rules:
        - {name: r, action: deny, sources: [198.18.0.1/32], protocol: any}
`
	c := strings.Replace(a, "198.18.0.1]", "198.18.0.2]", 1)
	va, vb, vc := mustVersion(t, a), mustVersion(t, b), mustVersion(t, c)
	if va != vb {
		t.Errorf("equivalent documents got versions %s and %s", va, vb)
	}
	if va == vc {
		t.Errorf("different documents share version %s", va)
	}
}

func mustVersion(t *testing.T, y string) string {
	t.Helper()
	_, c, err := Load(strings.NewReader(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return c.Version
}

// TestCompileDoesNotModify: Compile works on a copy.
func TestCompileDoesNotModify(t *testing.T) {
	doc, err := Decode(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := Marshal(doc)
	if _, err := Compile(doc); err != nil {
		t.Fatal(err)
	}
	after, _ := Marshal(doc)
	if !bytes.Equal(before, after) {
		t.Fatalf("Compile changed its input:\n%s\n%s", before, after)
	}
}

// TestGoBuiltDocument: documents built in Go compile (no line numbers).
func TestGoBuiltDocument(t *testing.T) {
	doc := &Document{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: "go"},
		Spec: Spec{Pools: []Pool{{Name: "p", Backends: []Backend{{Name: "b", Address: "198.18.0.1", Weight: 1}}}}}}
	if _, err := Compile(doc); err != nil {
		t.Fatal(err)
	}
	doc.Spec.Pools[0].Backends[0].Weight = 0
	var ve *ValidationError
	if _, err := Compile(doc); !errors.As(err, &ve) || ve.Problems[0].Path != "spec.pools[0].backends" || ve.Problems[0].Line != 0 {
		t.Fatalf("zero-weight pool: %v", err)
	}
}
