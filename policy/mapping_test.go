package policy

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// everyField is the fixture that sets every field of the schema.
const everyField = "testdata/good/every-field.yaml"

// leaf is one scalar of a value tree: where it is and how to replace it.
type leaf struct {
	path string
	v    reflect.Value
	set  func(reflect.Value)
}

// leaves walks v (addressable) and calls visit for every scalar: strings,
// numbers, booleans, and the elements of lists and maps of them. Unexported
// fields are skipped; they are not part of either form.
func leaves(v reflect.Value, path string, visit func(leaf)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			leaves(v.Elem(), path, visit)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				leaves(v.Field(i), path+"."+f.Name, visit)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			leaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i), visit)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			m, key := v, k
			visit(leaf{path: fmt.Sprintf("%s[%v]", path, k), v: v.MapIndex(k), set: func(x reflect.Value) { m.SetMapIndex(key, x) }})
		}
	default: // scalars, and arrays (a key hash)
		visit(leaf{path: path, v: v, set: v.Set})
	}
}

// fieldOf strips list indices and map keys: spec.pools[1].name is the field
// .Spec.Pools.Name.
func fieldOf(path string) string {
	var b strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// structFieldsOf lists every scalar field reachable from t, by fieldOf path.
func structFieldsOf(t reflect.Type, path string, out map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		structFieldsOf(t.Elem(), path, out)
	case reflect.Map:
		structFieldsOf(t.Elem(), path, out)
	case reflect.Struct:
		if t == reflect.TypeFor[netip.Addr]() || t == reflect.TypeFor[netip.Prefix]() {
			out[path] = true
			return
		}
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() {
				structFieldsOf(f.Type, path+"."+f.Name, out)
			}
		}
	default:
		out[path] = true
	}
}

// TestEveryFieldInFixture: the fixture sets every field of the document and
// of the compiled form to a non-zero value somewhere, so TestOneMapping
// exercises all of them, and a compiled field that no document field fills
// is caught here.
func TestEveryFieldInFixture(t *testing.T) {
	_, c := loadFile(t, everyField)
	for _, side := range []struct {
		name string
		v    any
	}{{"document (canonical)", c.Document()}, {"compiled form", c}} {
		want := map[string]bool{}
		structFieldsOf(reflect.TypeOf(side.v), "", want)
		set := map[string]bool{}
		leaves(reflect.ValueOf(side.v), "", func(l leaf) {
			if !l.v.IsZero() {
				set[fieldOf(l.path)] = true
			}
		})
		// netip values are walked as structs with unexported fields;
		// count them by their own zero value instead.
		leavesNetip(reflect.ValueOf(side.v), "", set)
		var missing []string
		for f := range want {
			if !set[f] {
				missing = append(missing, f)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			t.Errorf("%s: %s never sets %s: give each a non-zero value in the fixture (and, for a compiled field, fill it in build from the document)",
				side.name, everyField, strings.Join(missing, ", "))
		}
	}
}

// leavesNetip marks netip.Addr and netip.Prefix fields that hold a value.
func leavesNetip(v reflect.Value, path string, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			leavesNetip(v.Elem(), path, set)
		}
	case reflect.Struct:
		if a, ok := v.Interface().(netip.Addr); ok {
			if a.IsValid() {
				set[fieldOf(path)] = true
			}
			return
		}
		if p, ok := v.Interface().(netip.Prefix); ok {
			if p.IsValid() {
				set[fieldOf(path)] = true
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				leavesNetip(v.Field(i), path+"."+f.Name, set)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			leavesNetip(v.Index(i), fmt.Sprintf("%s[%d]", path, i), set)
		}
	}
}

// TestOneMapping: build is the one mapping from document to compiled form.
// Every scalar of the fixture's canonical document is changed in turn to
// other valid values; each change must change the compiled form. A field
// added to the document but not carried into the compiled form fails here.
func TestOneMapping(t *testing.T) {
	_, c := loadFile(t, everyField)
	base := c.Document()
	var paths []string
	leaves(reflect.ValueOf(base), "", func(l leaf) { paths = append(paths, l.path) })
	if len(paths) < 100 {
		t.Fatalf("only %d scalars in the fixture", len(paths))
	}
	// A field is shown carried when at least one of its values could be
	// changed validly; an enumerated value may have no valid neighbour
	// where it is (an http check's path), but has one elsewhere.
	tried := map[string]int{}
	for _, path := range paths {
		var orig reflect.Value
		leaves(reflect.ValueOf(base), "", func(l leaf) {
			if l.path == path {
				orig = l.v
			}
		})
		if orig.IsZero() || identity[path] || fixed[path] {
			continue
		}
		field := fieldOf(path)
		tried[field] += 0
		for _, cand := range candidates(orig) {
			// A name is also changed where it is referred to.
			for _, everywhere := range []bool{false, true} {
				d := c.Document()
				leaves(reflect.ValueOf(d), "", func(l leaf) {
					if l.path == path || (everywhere && l.v.Kind() == reflect.String && l.v.String() == orig.String()) {
						l.set(cand)
					}
				})
				c2, err := Compile(d)
				if err != nil {
					continue // not a valid change
				}
				tried[field]++
				if sameCompiled(c, c2) {
					t.Errorf("%s: %v -> %v leaves the compiled form as it was: build does not carry the field", path, orig, cand)
				}
				break
			}
		}
	}
	for field, n := range tried {
		if n == 0 {
			t.Errorf("%s: no valid change of any of its values found; teach candidates one", field)
		}
	}
}

// identity fields name the schema, not the policy: nothing compiles them.
var identity = map[string]bool{".APIVersion": true, ".Kind": true}

// fixed fields have no valid other value where every field is set:
// limitStore.tls.enabled must be true while TLS files are named. They are
// still checked by TestEveryFieldInFixture.
var fixed = map[string]bool{".Spec.Gateway.Limits.TLS.Enabled": true}

// sameCompiled compares two compiled forms, not the documents they keep.
func sameCompiled(a, b *Compiled) bool {
	x, y := *a, *b
	x.doc, y.doc, x.Version, y.Version = nil, nil, "", ""
	return reflect.DeepEqual(x, y)
}

// enums are the value sets of the document's enumerated fields.
var enums = [][]string{clientAuthModes, xdpModes, fwActions, ruleProtocols, vipProtocols, forwardings, backendStates, healthTypes, encodings, inspectActions, Detectors,
	ProviderKinds, {"api-key", "bearer"}, {"us-east-1", "eu-central-1"}}

// candidates returns other values of v's type that a valid document may hold.
func candidates(v reflect.Value) []reflect.Value {
	var out []reflect.Value
	add := func(x any) { out = append(out, reflect.ValueOf(x).Convert(v.Type())) }
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		var alts []string
		for _, e := range enums {
			if slices.Contains(e, s) {
				alts = append(alts, e...)
			}
		}
		if len(alts) > 0 {
			slices.Sort(alts)
			for _, o := range slices.Compact(alts) {
				if o != s {
					add(o)
				}
			}
			return out
		}
		if a, err := netip.ParseAddr(s); err == nil {
			add(a.Next().String())
			add(a.Prev().String())
			return out
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			q, _ := p.Addr().Prefix(p.Bits() + 1)
			add(q.String())
			return out
		}
		if h, ok := strings.CutPrefix(s, HashPrefix); ok {
			add(HashPrefix + h[:len(h)-1] + string("01"[(h[len(h)-1]-'0'+1)%2]))
			return out
		}
		if rest, ok := strings.CutPrefix(s, "tcp://"); ok { // a KV-event endpoint
			if i := strings.LastIndexByte(rest, ':'); i > 0 {
				if n, err := strconv.Atoi(rest[i+1:]); err == nil {
					add("tcp://" + rest[:i+1] + strconv.Itoa(n+1))
					return out
				}
			}
		}
		if host, port, ok := strings.Cut(s, ":"); ok && !strings.Contains(s, "/") {
			if n, err := strconv.Atoi(port); err == nil {
				add(host + ":" + strconv.Itoa(n+1))
				return out
			}
		}
		add(s + "x")
	case reflect.Bool:
		add(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		add(v.Int() + 1)
		add(v.Int() - 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		add(v.Uint() + 1)
		if v.Uint() > 0 {
			add(v.Uint() - 1)
		}
	case reflect.Float32, reflect.Float64:
		add(v.Float() + 1)
		add(v.Float() / 2) // ratios stay within 0..1
	}
	return out
}

// TestRoundTripCompiled: over every good document, compiling the kept
// canonical document yields the same compiled form, version and document.
func TestRoundTripCompiled(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			c1, err := Compile(doc)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Compile(c1.Document())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c1, c2) {
				t.Fatalf("compiled form changed:\n%#v\n%#v", c1, c2)
			}
			if d := c1.Document(); d == c1.Document() {
				t.Fatal("Document returns a shared value; callers could change the compiled policy's document")
			}
		})
	}
	if (&Compiled{}).Document() != nil {
		t.Fatal("a Compiled built in Go has no document")
	}
}
