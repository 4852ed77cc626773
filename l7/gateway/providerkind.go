package gateway

import (
	"fmt"
	"net/http"
	"os"

	"github.com/infergate/infergate/l7/translate/anthropicout"
	"github.com/infergate/infergate/l7/translate/azure"
	"github.com/infergate/infergate/l7/translate/bedrock"
	"github.com/infergate/infergate/l7/translate/gemini"
	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/policy"
)

// Provider kinds other than openai are reached through a translating
// round tripper (l7/translate/...) in front of the provider's transport:
// the proxy sends chat completions to it as to any OpenAI-compatible
// provider, and gets chat completions (whole or streamed) back, so every
// stage, the retry and fallback rules included, works the same whatever
// the provider. The translator holds the provider's credential (a file is
// read again when it changes) and sets its own authentication: the bearer
// key the proxy adds for openai providers is not passed on.

// kindTransport wraps base for p's kind; openai providers get base as is.
func kindTransport(p policy.Provider, base http.RoundTripper, getenv func(string) string) (http.RoundTripper, error) {
	kind := p.ProviderKind()
	if kind == policy.ProviderOpenAI {
		return base, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	switch kind {
	case policy.ProviderAzure:
		key, err := providerSecret(p, getenv)
		if err != nil {
			return nil, err
		}
		return &azure.Transport{BaseURL: p.BaseURL, APIVersion: p.APIVersion, Key: key, Bearer: p.Auth == "bearer", Base: base}, nil
	case policy.ProviderAnthropic:
		key, err := providerSecret(p, getenv)
		if err != nil {
			return nil, err
		}
		u := p.BaseURL
		if u == "" {
			u = "https://api.anthropic.com"
		}
		return &outbound.Transport{T: &anthropicout.Translator{BaseURL: u, Key: key, Version: p.APIVersion, MaxTokens: int64(p.MaxTokens)}, Base: base}, nil
	case policy.ProviderGemini:
		key, err := providerSecret(p, getenv)
		if err != nil {
			return nil, err
		}
		return &outbound.Transport{T: &gemini.Translator{BaseURL: p.BaseURL, Key: key}, Base: base}, nil
	case policy.ProviderBedrock:
		var creds bedrock.CredentialSource
		if p.AWSCredentialsFile != "" {
			f, err := outbound.NewFileSecret(p.AWSCredentialsFile)
			if err != nil {
				return nil, err
			}
			fc := &bedrock.FileCredentials{File: f, Profile: p.AWSProfile}
			if _, err := fc.Credentials(); err != nil {
				return nil, err
			}
			creds = fc
		} else {
			ec, err := bedrock.NewEnvCredentials(getenv)
			if err != nil {
				return nil, err
			}
			creds = ec
		}
		return &outbound.Transport{T: &bedrock.Translator{BaseURL: p.BaseURL, Region: p.Region, Credentials: creds}, Base: base}, nil
	}
	return nil, fmt.Errorf("provider kind %q is not supported", kind)
}

// providerSecret is p's key from its file (read again when it changes) or
// its environment variable.
func providerSecret(p policy.Provider, getenv func(string) string) (*outbound.Secret, error) {
	switch {
	case p.APIKeyFile != "":
		return outbound.NewFileSecret(p.APIKeyFile)
	case p.APIKeyEnv != "":
		return outbound.NewEnvSecret(p.APIKeyEnv, getenv)
	}
	return nil, fmt.Errorf("kind %s needs apiKeyFile or apiKeyEnv", p.ProviderKind())
}

// genAIOpenAI is gen_ai.provider.name of OpenAI-compatible upstreams.
const genAIOpenAI = "openai"

// providerName is the exchange's gen_ai.provider.name: the upstream that
// answered, or openai before any attempt (the API the client spoke).
func (x *exchange) providerName() string {
	if x.provider == "" {
		return genAIOpenAI
	}
	return x.provider
}

// labelProviders sets infergate_backend_provider_info for c's backends:
// the request metrics keep their labels (tenant, model, backend, status)
// and a query joins on backend for gen_ai_provider_name, e.g.
// sum by (gen_ai_provider_name) (rate(infergate_cost_usd_total[5m]) * on (backend) group_left (gen_ai_provider_name) infergate_backend_provider_info).
func (g *Gateway) labelProviders(c *policy.Compiled) {
	if g.metrics == nil {
		return
	}
	v := g.metrics.providers
	v.Reset()
	for _, p := range c.Gateway.Providers {
		v.WithLabelValues("provider/"+p.Name, policy.GenAIProviderName(p.ProviderKind())).Set(1)
	}
	for _, p := range c.Pools {
		for _, b := range p.Backends {
			v.WithLabelValues(p.Name+"/"+b.Name, genAIOpenAI).Set(1)
		}
	}
}

// gatewayRT is the gateway's own transport, looked up when a request is
// sent: the first configuration is built before New sets it.
type gatewayRT struct{ g *Gateway }

func (t gatewayRT) RoundTrip(r *http.Request) (*http.Response, error) { return t.g.rt.RoundTrip(r) }
