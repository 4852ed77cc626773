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
	// StripVariants drops the keys below the top level that differ from
	// the ones the gateway reads only by case (Request.Variants), so
	// that the upstream reads only what was inspected.
	StripVariants bool
}

// Apply returns body with the changes made. Without text changes, adding
// include_usage to a body with no stream_options is a splice; everything
// else decodes the top level into raw fields and re-encodes it, keeping
// fields the gateway does not know.
func (rw *Rewrite) Apply(r *Request, body []byte) ([]byte, error) {
	if len(rw.Texts) == 0 && len(r.Texts) == 0 {
		rw.Texts = nil
	}
	if rw.Model == "" && !rw.IncludeUsage && rw.Texts == nil && !rw.StripVariants {
		return body, nil
	}
	body = bytes.TrimSpace(body)
	if rw.Model == "" && rw.Texts == nil && !rw.StripVariants && r.StreamOptions == nil {
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
	if rw.Texts != nil && len(rw.Texts) != len(r.Texts) {
		return nil, fmt.Errorf("rewrite: %d replacement texts for %d texts", len(rw.Texts), len(r.Texts))
	}
	if r.Endpoint == ChatCompletions && (rw.Texts != nil || rw.StripVariants) {
		if err := rw.rewriteChat(r, top); err != nil {
			return nil, err
		}
	} else if rw.Texts != nil {
		if err := rw.replaceTexts(r, top); err != nil {
			return nil, err
		}
	}
	return json.Marshal(top)
}

const includeUsageField = `"stream_options":{"include_usage":true}`

func (rw *Rewrite) replaceTexts(r *Request, top map[string]json.RawMessage) error {
	switch r.Endpoint {
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
