// Package azure sends chat completions to Azure OpenAI: the request and
// answer are OpenAI's own, so only the address and the credential change.
// The route's upstream model names the deployment
// ({resource endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…);
// the credential goes in the api-key header, or as a bearer token (an
// Entra ID token kept fresh in a file by whatever mints it).
package azure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// DefaultAPIVersion is api-version when none is configured.
const DefaultAPIVersion = "2024-10-21"

// Transport rewrites the request for Azure and passes the answer through.
type Transport struct {
	BaseURL    string // the resource endpoint, https://<resource>.openai.azure.com
	APIVersion string
	Key        *outbound.Secret
	// Bearer sends the credential as Authorization: Bearer instead of api-key.
	Bearer bool
	Base   http.RoundTripper
}

// ProviderName is gen_ai.provider.name.
func (*Transport) ProviderName() string { return "azure.ai.openai" }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(in *http.Request) (*http.Response, error) {
	if in.Body != nil {
		defer in.Body.Close()
	}
	op, ok := operation(in.URL.Path)
	if !ok {
		return refuse(in, http.StatusNotFound, "unsupported_endpoint", "this provider serves chat completions, completions and embeddings"), nil
	}
	body, err := io.ReadAll(io.LimitReader(in.Body, outbound.MaxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	var m struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.Model == "" {
		return refuse(in, http.StatusBadRequest, "invalid_request", "the request names no model (the deployment)"), nil
	}
	key, err := t.Key.String()
	if err != nil {
		return nil, err
	}
	v := t.APIVersion
	if v == "" {
		v = DefaultAPIVersion
	}
	u := strings.TrimRight(t.BaseURL, "/") + "/openai/deployments/" + url.PathEscape(m.Model) + op + "?api-version=" + url.QueryEscape(v)
	out, err := http.NewRequestWithContext(in.Context(), http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range in.Header {
		if k != "Authorization" {
			out.Header[k] = vs
		}
	}
	if t.Bearer {
		out.Header.Set("Authorization", "Bearer "+key)
	} else {
		out.Header.Set("api-key", key)
	}
	resp, err := t.Base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("X-Request-Id") == "" {
		if id := resp.Header.Get("Apim-Request-Id"); id != "" {
			resp.Header.Set("X-Request-Id", id)
		}
	}
	return resp, nil
}

func operation(path string) (string, bool) {
	for _, op := range [...]string{"/chat/completions", "/completions", "/embeddings"} {
		if strings.HasSuffix(path, op) {
			return op, true
		}
	}
	return "", false
}

func refuse(in *http.Request, status int, code, msg string) *http.Response {
	e := &openai.Error{Status: status, Type: openai.TypeInvalidRequest, Code: code, Message: msg}
	b := e.Marshal()
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: in}
}
