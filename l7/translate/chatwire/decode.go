package chatwire

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// maxNamed bounds how many unknown fields a refusal names.
const maxNamed = 8

// DecodeRequest decodes an inbound API's request body, which must be a
// JSON object, into v, and refuses it when a top-level field is not in
// known: a field the gateway cannot translate is an error, not something
// dropped on the way upstream. noun is what the client's API calls a
// field in its errors ("field", "parameter"). Refusals are
// *RequestError.
func DecodeRequest(body []byte, v any, known map[string]bool, noun string) error {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return Bad("", "the request body is not a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Bad("", "invalid request: "+JSONReason(err))
	}
	var unknown []string
	TopLevelKeys(body, func(k []byte) {
		if !known[string(k)] {
			unknown = append(unknown, string(k))
		}
	})
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	if len(unknown) > maxNamed {
		unknown = append(unknown[:maxNamed], "…")
	}
	return Bad(unknown[0], "unsupported "+noun+": the gateway cannot translate "+strings.Join(unknown, ", "))
}

// JSONReason says why a body did not decode, in the client's terms (the
// field and the types), without the decoder's Go type names.
func JSONReason(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		if te.Field != "" {
			return te.Field + ": expected " + te.Type.String() + ", got " + te.Value
		}
		return "expected " + te.Type.String() + ", got " + te.Value
	}
	if _, ok := err.(*json.SyntaxError); ok {
		return "malformed JSON"
	}
	return err.Error()
}

// IsNull reports whether a raw field is absent or null.
func IsNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}
