package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Rewrite describes the changes to make to a request body before it goes
// upstream. The zero value changes nothing.
type Rewrite struct {
	// Model, when set, replaces the model name.
	Model string
	// IncludeUsage sets stream_options.include_usage to true.
	IncludeUsage bool
	// Texts, when non-nil, holds a replacement for every Request.Texts entry
	// (same length; unchanged entries repeated).
	Texts []string
}

// Apply returns body with the changes made. Without text changes, adding
// include_usage to a body with no stream_options is a splice; everything
// else decodes the top level into raw fields and re-encodes it, keeping
// fields the gateway does not know.
func (rw *Rewrite) Apply(r *Request, body []byte) ([]byte, error) {
	if len(rw.Texts) == 0 && len(r.Texts) == 0 {
		rw.Texts = nil
	}
	if rw.Model == "" && !rw.IncludeUsage && rw.Texts == nil {
		return body, nil
	}
	body = bytes.TrimSpace(body)
	if rw.Model == "" && rw.Texts == nil && r.StreamOptions == nil {
		out := make([]byte, 0, len(body)+len(includeUsageField)+1)
		out = append(out, '{')
		out = append(out, includeUsageField...)
		rest := bytes.TrimSpace(body[1:])
		if len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		return append(out, rest...), nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("rewrite request: %w", err)
	}
	if rw.Model != "" {
		b, _ := json.Marshal(rw.Model)
		top["model"] = b
	}
	if rw.IncludeUsage {
		var so map[string]json.RawMessage
		if raw, ok := top["stream_options"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &so); err != nil {
				return nil, fmt.Errorf("rewrite stream_options: %w", err)
			}
		}
		if so == nil {
			so = map[string]json.RawMessage{}
		}
		so["include_usage"] = json.RawMessage("true")
		top["stream_options"], _ = json.Marshal(so)
	}
	if rw.Texts != nil {
		if len(rw.Texts) != len(r.Texts) {
			return nil, fmt.Errorf("rewrite: %d replacement texts for %d texts", len(rw.Texts), len(r.Texts))
		}
		if err := rw.replaceTexts(r, top); err != nil {
			return nil, err
		}
	}
	return json.Marshal(top)
}

const includeUsageField = `"stream_options":{"include_usage":true}`

func (rw *Rewrite) replaceTexts(r *Request, top map[string]json.RawMessage) error {
	switch r.Endpoint {
	case ChatCompletions:
		var msgs []map[string]json.RawMessage
		if err := json.Unmarshal(top["messages"], &msgs); err != nil {
			return fmt.Errorf("rewrite messages: %w", err)
		}
		parts := map[int][]map[string]json.RawMessage{}
		for i, t := range r.Texts {
			v, _ := json.Marshal(rw.Texts[i])
			if t.Part < 0 {
				msgs[t.Message]["content"] = v
				continue
			}
			p, ok := parts[t.Message]
			if !ok {
				if err := json.Unmarshal(msgs[t.Message]["content"], &p); err != nil {
					return fmt.Errorf("rewrite content parts: %w", err)
				}
				parts[t.Message] = p
			}
			p[t.Part]["text"] = v
		}
		for i, p := range parts {
			msgs[i]["content"], _ = json.Marshal(p)
		}
		top["messages"], _ = json.Marshal(msgs)
	default:
		field := "prompt"
		if r.Endpoint == Embeddings {
			field = "input"
		}
		raw := bytes.TrimSpace(top[field])
		if len(raw) > 0 && raw[0] == '"' {
			top[field], _ = json.Marshal(rw.Texts[0])
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("rewrite %s: %w", field, err)
		}
		for i, t := range r.Texts {
			items[t.Item], _ = json.Marshal(rw.Texts[i])
		}
		top[field], _ = json.Marshal(items)
	}
	return nil
}
