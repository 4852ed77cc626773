package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// rewriteChat replaces a chat request's texts (every kind) and drops case
// variants of the keys the gateway reads. The fields it touches are
// decoded as generic values (numbers kept as written) and encoded again;
// the rest of the body is left as it came.
func (rw *Rewrite) rewriteChat(r *Request, top map[string]json.RawMessage) error {
	var doc chatDoc
	for _, f := range []struct {
		name string
		dst  *any
	}{{"messages", &doc.messages}, {"tools", &doc.tools}, {"functions", &doc.functions}, {"response_format", &doc.format}} {
		raw, ok := top[f.name]
		if !ok || isNull(raw) {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(f.dst); err != nil {
			return fmt.Errorf("rewrite %s: %w", f.name, err)
		}
	}
	for i := range rw.Texts {
		if err := doc.set(r.Texts[i], rw.Texts[i]); err != nil {
			return fmt.Errorf("rewrite %s text: %w", kindName(r.Texts[i].Kind), err)
		}
	}
	if rw.StripVariants {
		doc.strip()
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"messages", doc.messages}, {"tools", doc.tools}, {"functions", doc.functions}, {"response_format", doc.format}} {
		if f.v == nil {
			continue
		}
		b, err := json.Marshal(f.v)
		if err != nil {
			return fmt.Errorf("rewrite %s: %w", f.name, err)
		}
		top[f.name] = b
	}
	return nil
}

// chatDoc is the decoded fields of a chat request that hold text.
type chatDoc struct {
	messages, tools, functions, format any
}

var errShape = errors.New("unexpected shape")

func index(v any, i int) (map[string]any, error) {
	a, ok := v.([]any)
	if !ok || i < 0 || i >= len(a) {
		return nil, errShape
	}
	m, ok := a[i].(map[string]any)
	if !ok {
		return nil, errShape
	}
	return m, nil
}

func member(m map[string]any, key string) (map[string]any, error) {
	o, ok := m[key].(map[string]any)
	if !ok {
		return nil, errShape
	}
	return o, nil
}

// set writes one text back where it came from.
func (d *chatDoc) set(t Text, v string) error {
	var val any = v
	if t.Kind.IsJSON() {
		if !json.Valid([]byte(v)) {
			return errors.New("a redacted schema is no longer valid JSON")
		}
		val = json.RawMessage(v)
	}
	var obj map[string]any
	var key string
	var err error
	switch t.Kind {
	case KindContent, KindRefusalPart, KindRefusal, KindToolCallArguments, KindFunctionCallArguments:
		var msg map[string]any
		if msg, err = index(d.messages, t.Message); err != nil {
			return err
		}
		switch t.Kind {
		case KindContent:
			if t.Part < 0 {
				obj, key = msg, "content"
			} else {
				key = "text"
				obj, err = index(msg["content"], t.Part)
			}
		case KindRefusalPart:
			key = "refusal"
			obj, err = index(msg["content"], t.Part)
		case KindRefusal:
			obj, key = msg, "refusal"
		case KindToolCallArguments:
			key = "arguments"
			if obj, err = index(msg["tool_calls"], t.Item); err == nil {
				obj, err = member(obj, "function")
			}
		case KindFunctionCallArguments:
			key = "arguments"
			obj, err = member(msg, "function_call")
		}
	case KindToolDescription, KindToolParameters:
		key = "description"
		if t.Kind == KindToolParameters {
			key = "parameters"
		}
		if obj, err = index(d.tools, t.Item); err == nil {
			obj, err = member(obj, "function")
		}
	case KindFunctionDescription, KindFunctionParameters:
		key = "description"
		if t.Kind == KindFunctionParameters {
			key = "parameters"
		}
		obj, err = index(d.functions, t.Item)
	case KindResponseFormat:
		key = "json_schema"
		var ok bool
		if obj, ok = d.format.(map[string]any); !ok {
			err = errShape
		}
	default:
		err = errShape
	}
	if err != nil {
		return err
	}
	obj[key] = val
	return nil
}

// strip drops the case variants of the keys the gateway reads.
func (d *chatDoc) strip() {
	each := func(v any, f func(map[string]any)) {
		if a, ok := v.([]any); ok {
			for _, e := range a {
				if m, ok := e.(map[string]any); ok {
					f(m)
				}
			}
		}
	}
	fn := func(m map[string]any) { stripAny(m, functionKeys) }
	each(d.messages, func(m map[string]any) {
		stripAny(m, messageKeys)
		each(m["content"], func(p map[string]any) { stripAny(p, partKeys) })
		each(m["tool_calls"], func(c map[string]any) {
			stripAny(c, toolKeys)
			if f, ok := c["function"].(map[string]any); ok {
				fn(f)
			}
		})
		if f, ok := m["function_call"].(map[string]any); ok {
			fn(f)
		}
	})
	each(d.tools, func(t map[string]any) {
		stripAny(t, toolKeys)
		if f, ok := t["function"].(map[string]any); ok {
			fn(f)
		}
	})
	each(d.functions, fn)
	if m, ok := d.format.(map[string]any); ok {
		stripAny(m, formatKeys)
	}
}

func stripAny(m map[string]any, keys keySet) {
	for k := range m {
		if variantOf([]byte(k), keys) != "" {
			delete(m, k)
		}
	}
}

func kindName(k TextKind) string {
	switch k {
	case KindContent:
		return "content"
	case KindRefusalPart, KindRefusal:
		return "refusal"
	case KindToolCallArguments, KindFunctionCallArguments:
		return "arguments"
	case KindToolDescription, KindFunctionDescription:
		return "description"
	case KindToolParameters, KindFunctionParameters:
		return "parameters"
	default:
		return "response_format"
	}
}
