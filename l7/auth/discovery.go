package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// maxDiscoveryBytes bounds an OpenID Provider's configuration document;
// real ones are a few KiB.
const maxDiscoveryBytes = 256 << 10

// discovery reads an issuer's OpenID Provider configuration (OpenID
// Connect Discovery 1.0, section 4) for its key set and introspection
// endpoint.
type discovery struct {
	issuer string
	url    string
	client *http.Client
	// last is the most recent document read, for the introspection
	// endpoint; nil until the first fetch succeeds.
	last atomic.Pointer[discoveryDoc]
}

type discoveryDoc struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

func newDiscovery(issuer string, client *http.Client) (*discovery, error) {
	if !strings.HasPrefix(issuer, "https://") && !strings.HasPrefix(issuer, "http://") {
		return nil, fmt.Errorf("discovery needs an http(s) issuer, not %q", issuer)
	}
	return &discovery{
		issuer: issuer,
		url:    strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
		client: client,
	}, nil
}

// fetch reads the document. Its issuer must be the configured one exactly
// (section 4.3): otherwise a document served at one issuer's address could
// name another's keys.
func (d *discovery) fetch(ctx context.Context) (*discoveryDoc, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return nil, fmt.Errorf("building discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the OpenID configuration: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the OpenID configuration: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the OpenID configuration: %w", err)
	}
	if len(body) > maxDiscoveryBytes {
		return nil, fmt.Errorf("OpenID configuration larger than %d bytes", maxDiscoveryBytes)
	}
	var doc discoveryDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding the OpenID configuration: %w", err)
	}
	if doc.Issuer != d.issuer {
		return nil, fmt.Errorf("the OpenID configuration names issuer %q, not %q", truncateText(doc.Issuer, 200), d.issuer)
	}
	for name, u := range map[string]string{"jwks_uri": doc.JWKSURI, "introspection_endpoint": doc.IntrospectionEndpoint} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return nil, fmt.Errorf("the OpenID configuration's %s is not an http(s) URL", name)
		}
	}
	if doc.JWKSURI == "" {
		return nil, fmt.Errorf("the OpenID configuration has no jwks_uri")
	}
	d.last.Store(&doc)
	return &doc, nil
}

func truncateText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
