package policy

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Marshal writes a document as YAML with fields in schema order. Zero-valued
// omitempty fields are left out, except those whose zero means something
// (they carry a default tag), so Decode(Marshal(d)) gives d back.
func Marshal(doc *Document) ([]byte, error) {
	n, err := encodeNode(reflect.ValueOf(doc).Elem())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding policy: %w", err)
	}
	return buf.Bytes(), nil
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func encodeNode(v reflect.Value) (*yaml.Node, error) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return encodeNode(v.Elem())
	}
	if v.Type().Implements(textMarshaler) {
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", v.Type(), err)
		}
		return scalar("!!str", string(text)), nil
	}
	// Scalars are built directly: yaml.v3 quotes a !!str value that would
	// read back as another type.
	switch v.Kind() {
	case reflect.String:
		return scalar("!!str", v.String()), nil
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool())), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10)), nil
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, omitEmpty := yamlName(f)
			if name == "-" {
				continue
			}
			fv := v.Field(i)
			if omitEmpty && fv.IsZero() && f.Tag.Get("default") == "" {
				continue
			}
			if omitEmpty && (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				continue
			}
			val, err := encodeNode(fv)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, val)
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() > 0 && v.Index(0).Kind() != reflect.Struct {
			n.Style = yaml.FlowStyle
		}
		for i := 0; i < v.Len(); i++ {
			item, err := encodeNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, item)
		}
		return n, nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			val, err := encodeNode(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", k), val)
		}
		return n, nil
	default:
		n := &yaml.Node{}
		if err := n.Encode(v.Interface()); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", v.Type(), err)
		}
		return n, nil
	}
}
