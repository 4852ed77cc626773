package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Key identifies one stored answer.
type Key [sha256.Size]byte

// Facts are what the gateway needs from a request besides its key.
type Facts struct {
	// Key is the exact key.
	Key Key
	// Deterministic: the request sets temperature 0.
	Deterministic bool
	// LastUser is the text of the last user message of a chat request
	// ("" when there is none); Context is the exact key of the request
	// with that text left out, so that a semantic match also matches
	// everything else (earlier messages, parameters).
	LastUser string
	Context  Key
}

// excluded are the members that do not change an answer (doc.go).
var excluded = map[string]bool{"model": true, "stream": true, "stream_options": true, "user": true, "metadata": true, "store": true}

// ErrNotObject is returned for a body that is not a JSON object.
var ErrNotObject = errors.New("cache: request body is not a JSON object")

// RequestFacts computes the key and facts of a request body. scope is the
// tenant (or "" when shared), endpoint its path and model the resolved
// model name.
func RequestFacts(scope, endpoint, model string, body []byte) (Facts, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var top map[string]any
	if err := d.Decode(&top); err != nil || top == nil {
		return Facts{}, ErrNotObject
	}
	var f Facts
	if t, ok := top["temperature"].(json.Number); ok {
		if v, err := t.Float64(); err == nil && v == 0 {
			f.Deterministic = true
		}
	}
	for k := range excluded {
		delete(top, k)
	}
	canon, err := canonical(top)
	if err != nil {
		return Facts{}, err
	}
	f.Key = digest(scope, endpoint, model, canon)
	if msgs, ok := top["messages"].([]any); ok {
		for i := len(msgs) - 1; i >= 0; i-- {
			m, ok := msgs[i].(map[string]any)
			if !ok || m["role"] != "user" {
				continue
			}
			f.LastUser = contentText(m["content"])
			if f.LastUser == "" {
				break
			}
			saved := m["content"]
			m["content"] = nil
			c, err := canonical(top)
			m["content"] = saved
			if err != nil {
				return Facts{}, err
			}
			f.Context = digest(scope, endpoint, model, c)
			break
		}
	}
	return f, nil
}

func digest(scope, endpoint, model string, canon []byte) Key {
	h := sha256.New()
	for _, s := range []string{scope, endpoint, model} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(canon)
	var k Key
	h.Sum(k[:0])
	return k
}

// contentText is a message's text: a string, or its text parts joined.
func contentText(c any) string {
	switch v := c.(type) {
	case string:
		return v
	case []any:
		var b []byte
		for _, p := range v {
			part, ok := p.(map[string]any)
			if !ok || part["type"] != "text" {
				return "" // images and audio: not matched by meaning
			}
			s, _ := part["text"].(string)
			if len(b) > 0 {
				b = append(b, '\n')
			}
			b = append(b, s...)
		}
		return string(b)
	}
	return ""
}

// canonical marshals v with sorted keys (encoding/json sorts map keys) and
// numbers in one spelling.
func canonical(v any) ([]byte, error) {
	b, err := json.Marshal(normalise(v))
	if err != nil {
		return nil, fmt.Errorf("cache: canonical request: %w", err)
	}
	return b, nil
}

func normalise(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = normalise(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalise(e)
		}
		return out
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		if f, err := strconv.ParseFloat(string(t), 64); err == nil {
			if f == float64(int64(f)) && f > -1e15 && f < 1e15 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
		return t
	}
	return v
}
