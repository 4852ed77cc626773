package chatwire

import "github.com/infergate/infergate/internal/jsonstr"

// AppendString appends s to dst as a JSON string, as encoding/json writes
// it without HTML escaping (internal/jsonstr): always valid JSON, and no
// allocation, once per streamed event.
func AppendString(dst []byte, s string) []byte { return jsonstr.Append(dst, s, false) }
