package cluster

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/infergate/infergate/policy"
)

// marshalDocument writes a composed document as JSON (which policy.Decode
// reads, JSON being YAML) by policy.Marshal's rules: fields by their yaml
// names, a zero omitempty field left out unless its zero means something
// (it carries a default tag), text marshalers as strings, map keys
// sorted. policy.Marshal's YAML emitter costs most of a change at 10,000
// endpoints (about 40% of the CPU of compose and apply, 190 MB allocated
// per document); this writes the same document for a fraction, and
// TestMarshalDocumentAsPolicyMarshal holds the two to the same result.
func marshalDocument(doc *policy.Document) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(1 << 16)
	if err := encodeJSON(&b, reflect.ValueOf(doc).Elem()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()

func encodeJSON(b *bytes.Buffer, v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return encodeJSON(b, v.Elem())
	}
	if v.Type().Implements(textMarshalerType) {
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return fmt.Errorf("encoding %s: %w", v.Type(), err)
		}
		writeString(b, string(text))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		writeString(b, v.String())
	case reflect.Bool:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("encoding %v: not a JSON number", f)
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	case reflect.Struct:
		b.WriteByte('{')
		first := true
		for _, f := range fieldsOf(v.Type()) {
			fv := v.Field(f.index)
			if f.omitEmpty && fv.IsZero() && !f.hasDefault {
				continue
			}
			if f.omitEmpty && (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(f.quoted)
			b.WriteByte(':')
			if err := encodeJSON(b, fv); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case reflect.Slice:
		b.WriteByte('[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeJSON(b, v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case reflect.Map:
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := encodeJSON(b, v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key()))); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("encoding %s: unsupported kind %s", v.Type(), v.Kind())
	}
	return nil
}

// encField is one struct field as the encoder writes it.
type encField struct {
	index      int
	quoted     string // the yaml name, as a JSON string
	omitEmpty  bool
	hasDefault bool
}

// fields caches each struct type's encFields: reading the tags of every
// field of every backend was most of the encoder's time.
var fields sync.Map // reflect.Type -> []encField

func fieldsOf(t reflect.Type) []encField {
	if fs, ok := fields.Load(t); ok {
		return fs.([]encField)
	}
	var fs []encField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, omitEmpty := yamlField(f)
		if name == "-" {
			continue
		}
		var q bytes.Buffer
		writeString(&q, name)
		fs = append(fs, encField{index: i, quoted: q.String(), omitEmpty: omitEmpty, hasDefault: f.Tag.Get("default") != ""})
	}
	fields.Store(t, fs)
	return fs
}

func yamlField(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, slices.Contains(strings.Split(opts, ","), "omitempty")
}

// writeString writes s as encoding/json does. Most strings (names,
// addresses) need no escaping and are written as they are.
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			b.Write(q)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}
