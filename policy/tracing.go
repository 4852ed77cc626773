package policy

import "net/url"

// Tracing exports a span per gateway request over OTLP/HTTP (see l7/trace).
// Off unless Endpoint is set.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP traces URL, e.g.
	// https://otel-collector:4318/v1/traces.
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// SampleRatio of the traces the gateway starts itself, 0..1 (default
	// 0.1); a client's sampled traceparent is always followed.
	SampleRatio float64 `yaml:"sampleRatio,omitempty" json:"sampleRatio,omitempty"`
	// CAFile verifies an https endpoint instead of the system roots.
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
}

// tracing checks the trace export settings.
func (v *validator) tracing(p string, t Tracing) {
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(p+".endpoint", "%q is not an http:// or https:// URL", truncate(t.Endpoint, 80))
		}
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 {
		v.add(p+".sampleRatio", "%v is outside 0..1", t.SampleRatio)
	}
	if t.Endpoint == "" && (t.SampleRatio != 0 || t.CAFile != "") {
		v.add(p+".endpoint", "is required when sampleRatio or caFile is set")
	}
	if t.CAFile != "" && t.CAFile[0] != '/' {
		v.add(p+".caFile", "%q must be an absolute path", t.CAFile)
	}
}
