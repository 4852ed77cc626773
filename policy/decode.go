package policy

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Input bounds. A policy is operator-written configuration; anything past
// these is a mistake or an attack on the agent, refused before it costs
// memory.
const (
	// MaxDocumentBytes bounds one document's size.
	MaxDocumentBytes = 4 << 20
	// MaxListItems bounds any one list (keys are the longest in practice).
	MaxListItems = 10000
	// MaxNodes bounds the YAML nodes visited, alias expansions included, so
	// an alias bomb cannot blow up a small document.
	MaxNodes = 200000
	// maxProblems keeps an error report readable and bounded.
	maxProblems = 200
)

// Problem is one thing wrong with a document: where (a path such as
// spec.dataplane.vips[2].port, and its line when known) and what.
type Problem struct {
	Path    string `json:"path"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// ValidationError lists every problem found in a document, in document order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid policy: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid policy: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// problems collects Problems with line numbers looked up in a position table.
type problems struct {
	pos  map[string]int
	list []Problem
}

func (ps *problems) add(path, format string, args ...any) {
	if len(ps.list) >= maxProblems {
		if len(ps.list) == maxProblems {
			ps.list = append(ps.list, Problem{Message: fmt.Sprintf("more than %d problems; stopping", maxProblems)})
		}
		return
	}
	ps.list = append(ps.list, Problem{Path: path, Line: lineOf(ps.pos, path), Message: fmt.Sprintf(format, args...)})
}

// addAt reports a problem at an explicit line (a repeated key, whose path
// already has the first occurrence's line).
func (ps *problems) addAt(path string, line int, format string, args ...any) {
	n := len(ps.list)
	ps.add(path, format, args...)
	if len(ps.list) > n && ps.list[n].Path == path {
		ps.list[n].Line = line
	}
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	// Report in document order when every problem has a line; otherwise
	// (documents built in Go) in the order found.
	sorted := true
	for _, p := range ps.list {
		if p.Line == 0 {
			sorted = false
			break
		}
	}
	if sorted {
		sort.SliceStable(ps.list, func(i, j int) bool { return ps.list[i].Line < ps.list[j].Line })
	}
	return &ValidationError{Problems: ps.list}
}

// lineOf finds the line of path, or of its nearest ancestor that was written
// (a missing field is reported at the object that lacks it).
func lineOf(pos map[string]int, path string) int {
	for path != "" {
		if l, ok := pos[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos[""]
}

// Decode reads exactly one YAML policy document, strictly: unknown fields,
// wrong types, duplicate keys, several documents in one stream and input past
// MaxDocumentBytes are errors. Every structural problem is reported at once
// as a *ValidationError with paths and line numbers. Absent fields whose zero
// value means something (Backend.Weight, Route.Weight, Model.Retries) are given
// their defaults here; SetDefaults fills the rest. Decode does not validate
// semantics: call Validate (or Compile, which validates).
func Decode(r io.Reader) (*Document, error) {
	doc, structural, err := decode(r)
	if err != nil {
		return nil, err
	}
	if len(structural) > 0 {
		return nil, &ValidationError{Problems: structural}
	}
	return doc, nil
}

// decode returns the document as far as it could be read, with its
// structural problems; err is set only when nothing usable was read
// (syntax, size, several documents).
func decode(r io.Reader) (*Document, []Problem, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading policy: %w", err)
	}
	if len(b) > MaxDocumentBytes {
		return nil, nil, &ValidationError{Problems: []Problem{{Message: fmt.Sprintf("document is larger than %d bytes", MaxDocumentBytes)}}}
	}
	if p, bad := textProblem(b); bad {
		return nil, nil, &ValidationError{Problems: []Problem{p}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, &ValidationError{Problems: []Problem{{Message: "empty document"}}}
		}
		return nil, nil, &ValidationError{Problems: []Problem{syntaxProblem(b, err)}}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, nil, &ValidationError{Problems: []Problem{syntaxProblem(b, err)}}
	default:
		return nil, nil, &ValidationError{Problems: []Problem{{Line: next.Line, Message: "more than one document in the stream; apply one policy at a time"}}}
	}
	doc := &Document{}
	d := &decoder{ps: problems{pos: map[string]int{}}}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	if body.Kind == yaml.ScalarNode && body.ShortTag() == "!!null" {
		return nil, nil, &ValidationError{Problems: []Problem{{Line: body.Line, Message: "empty document"}}}
	}
	d.ps.pos[""] = body.Line
	d.value(body, reflect.ValueOf(doc).Elem(), "")
	doc.pos = d.ps.pos
	if err := d.ps.err(); err != nil {
		return doc, err.(*ValidationError).Problems, nil
	}
	return doc, nil, nil
}

type decoder struct {
	ps    problems
	nodes int
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value decodes n into v (settable), recording the position of path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	d.nodes++
	if d.nodes > MaxNodes {
		if d.nodes == MaxNodes+1 {
			d.ps.add(path, "document has more than %d YAML nodes", MaxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.ps.add(path, "unresolved alias")
			return
		}
		n = n.Alias
	}
	if _, seen := d.ps.pos[path]; !seen {
		d.ps.pos[path] = n.Line
	}
	// A null (key with nothing after it, or ~) leaves the zero value.
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			d.ps.add(path, "expected a %s, got %s", typeWord(v.Type()), kindWord(n))
			return
		}
		if n.ShortTag() != "!!str" {
			d.ps.add(path, "expected a %s such as \"2s\", got %s", typeWord(v.Type()), kindWord(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.ps.add(path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			if n.Kind == yaml.ScalarNode {
				d.ps.add(path, "expected a string, got %s (quote it: %q)", kindWord(n), n.Value)
			} else {
				d.ps.add(path, "expected a string, got %s", kindWord(n))
			}
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.ps.add(path, "expected true or false, got %s", kindWord(n))
			return
		}
		b, _ := strconv.ParseBool(n.Value)
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.ps.add(path, "expected an integer, got %s", kindWord(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.ps.add(path, "%s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.ps.add(path, "expected a non-negative integer, got %s", kindWord(n))
			return
		}
		s := strings.ReplaceAll(n.Value, "_", "")
		if strings.HasPrefix(s, "-") {
			d.ps.add(path, "%s must not be negative", n.Value)
			return
		}
		u, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 0, v.Type().Bits())
		if err != nil {
			d.ps.add(path, "%s is out of range (at most %d)", n.Value, uint64(1)<<v.Type().Bits()-1)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!int") {
			d.ps.add(path, "expected a number, got %s", kindWord(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.ps.add(path, "%s is not a finite number", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.ps.add(path, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.ps.add(path, "expected an object with fields (%s), got %s", strings.Join(fieldNames(v.Type()), ", "), kindWord(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]int{}
	present := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.ps.add(path, "field names must be plain strings (line %d)", k.Line)
			continue
		}
		fp := joinPath(path, k.Value)
		if prev, dup := seen[k.Value]; dup {
			d.ps.addAt(fp, k.Line, "field %q appears twice (first on line %d)", k.Value, prev)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			d.ps.pos[fp] = k.Line
			msg := fmt.Sprintf("unknown field %q", k.Value)
			if s := suggest(k.Value, fieldNames(v.Type())); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.ps.add(fp, "%s", msg)
			continue
		}
		d.ps.pos[fp] = k.Line
		present[k.Value] = true
		d.value(val, v.FieldByIndex(f.index), fp)
	}
	// Fields whose zero is meaningful take their default only when absent.
	for name, f := range fields {
		if f.def == "" || present[name] {
			continue
		}
		fv := v.FieldByIndex(f.index)
		if u, err := strconv.ParseUint(f.def, 10, 64); err == nil && fv.CanSet() {
			switch fv.Kind() {
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				fv.SetUint(u)
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				fv.SetInt(int64(u))
			}
		}
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.ps.add(path, "expected a list, got %s", kindWord(n))
		return
	}
	if len(n.Content) > MaxListItems {
		d.ps.add(path, "list has %d items; at most %d are allowed", len(n.Content), MaxListItems)
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.ps.add(path, "expected a map, got %s", kindWord(n))
		return
	}
	if len(n.Content)/2 > MaxListItems {
		d.ps.add(path, "map has %d entries; at most %d are allowed", len(n.Content)/2, MaxListItems)
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.ps.add(path, "cannot decode into %s", v.Type())
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.ps.add(path, "map keys must be strings (line %d)", k.Line)
			continue
		}
		kp := path + "." + k.Value
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.ps.addAt(kp, k.Line, "key %q appears twice (first on line %d)", k.Value, d.ps.pos[kp])
			continue
		}
		d.ps.pos[kp] = k.Line
		ev := reflect.New(v.Type().Elem()).Elem()
		d.value(val, ev, kp)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

type fieldInfo struct {
	index []int
	def   string // `default:"..."` applied when the field is absent
}

// structFields maps YAML field names to struct fields.
func structFields(t reflect.Type) map[string]fieldInfo {
	out := map[string]fieldInfo{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _ := yamlName(f)
		if name == "-" {
			continue
		}
		out[name] = fieldInfo{index: f.Index, def: f.Tag.Get("default")}
	}
	return out
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if n, _ := yamlName(f); n != "-" {
			names = append(names, n)
		}
	}
	return names
}

// yamlName returns a field's YAML name and whether it is omitempty.
func yamlName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, strings.Contains(opts, "omitempty")
}

func typeWord(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return "duration"
	}
	return t.String()
}

func kindWord(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!str":
			return strconv.Quote(n.Value)
		default:
			return n.ShortTag() + " " + n.Value
		}
	}
	return "something else"
}

// suggest returns the known name closest to a misspelt one, if close enough.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(got), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
