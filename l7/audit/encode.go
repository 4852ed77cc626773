package audit

import (
	"math"
	"strconv"
	"time"

	"github.com/infergate/infergate/internal/jsonstr"
)

// AppendJSON appends r as one JSON object, byte for byte what
// encoding/json writes with HTML escaping off (TestAppendJSONMatchesEncoder),
// without reflection: the audit log is written on every request.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendOptString(b, "tenant", r.Tenant)
	b = appendOptString(b, "key", r.Key)
	b = appendOptString(b, "subject", r.Subject)
	b = append(b, `,"endpoint":`...)
	b = appendString(b, r.Endpoint)
	b = appendOptString(b, "model", r.Model)
	b = appendOptString(b, "backend", r.Backend)
	b = appendOptString(b, "provider", r.Provider)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	if r.Stream {
		b = append(b, `,"stream":true`...)
	}
	b = append(b, `,"prompt_tokens":`...)
	b = strconv.AppendInt(b, r.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, r.CompletionTokens, 10)
	b = appendOptString(b, "usage_source", r.UsageSource)
	b = append(b, `,"cost_usd":`...)
	b = appendFloat(b, r.CostUSD)
	if len(r.Verdicts) > 0 {
		b = append(b, `,"verdicts":`...)
		b = appendStrings(b, r.Verdicts)
	}
	if r.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(r.Attempts), 10)
	}
	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, r.LatencyMS)
	if r.TTFTMS != 0 {
		b = append(b, `,"ttft_ms":`...)
		b = appendFloat(b, r.TTFTMS)
	}
	b = appendOptString(b, "error", r.Error)
	if len(r.Prompt) > 0 {
		b = append(b, `,"prompt":`...)
		b = appendStrings(b, r.Prompt)
	}
	b = appendOptString(b, "cache", r.Cache)
	if r.CachedTokens != 0 {
		b = append(b, `,"cached_tokens":`...)
		b = strconv.AppendInt(b, r.CachedTokens, 10)
	}
	return append(b, '}')
}

func appendOptString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendStrings(b []byte, vs []string) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendString writes s as encoding/json does without HTML escaping.
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, false) }

// appendFloat formats like encoding/json.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0') // encoding/json refuses these; a log line must not
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
