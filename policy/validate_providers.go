package policy

import (
	"path/filepath"
	"regexp"
	"slices"
)

// awsRegion is the shape of an AWS region name (us-east-1, eu-central-2,
// us-gov-west-1).
var awsRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// providerKind checks what each provider kind needs; baseURL is checked
// by providers (required for openai and azure-openai only: the others have
// a public default).
func (v *validator) providerKind(pp string, pr Provider) {
	kind := pr.ProviderKind()
	if !slices.Contains(ProviderKinds, kind) {
		v.add(pp+".kind", "%q is not a provider kind (openai, azure-openai, anthropic, bedrock, gemini)", truncate(pr.Kind, 40))
		return
	}
	only := func(field, val string, kinds ...string) {
		if val != "" && !slices.Contains(kinds, kind) {
			v.add(pp+"."+field, "applies only to kind %s, not %s", kinds[0], kind)
		}
	}
	only("apiVersion", pr.APIVersion, ProviderAzure, ProviderAnthropic)
	only("auth", pr.Auth, ProviderAzure)
	only("region", pr.Region, ProviderBedrock)
	only("awsCredentialsFile", pr.AWSCredentialsFile, ProviderBedrock)
	only("awsProfile", pr.AWSProfile, ProviderBedrock)
	if pr.MaxTokens != 0 && kind != ProviderAnthropic {
		v.add(pp+".maxTokens", "applies only to kind anthropic, not %s", kind)
	}
	if pr.MaxTokens < 0 {
		v.add(pp+".maxTokens", "must be positive")
	}
	switch kind {
	case ProviderAzure:
		if pr.Auth != "" && pr.Auth != "api-key" && pr.Auth != "bearer" {
			v.add(pp+".auth", "%q is not api-key or bearer", truncate(pr.Auth, 40))
		}
		if pr.APIKeyFile == "" && pr.APIKeyEnv == "" {
			v.add(pp, "kind azure-openai needs apiKeyFile or apiKeyEnv (the api-key or bearer token)")
		}
	case ProviderAnthropic, ProviderGemini:
		if pr.APIKeyFile == "" && pr.APIKeyEnv == "" {
			v.add(pp, "kind %s needs apiKeyFile or apiKeyEnv", kind)
		}
	case ProviderBedrock:
		if pr.Region == "" {
			v.add(pp+".region", "is required for kind bedrock")
		} else if !awsRegion.MatchString(pr.Region) {
			v.add(pp+".region", "%q is not an AWS region name", truncate(pr.Region, 40))
		}
		if pr.APIKeyFile != "" || pr.APIKeyEnv != "" {
			v.add(pp, "kind bedrock signs with AWS credentials (awsCredentialsFile or the AWS_* environment), not apiKeyFile/apiKeyEnv")
		}
		if pr.AWSCredentialsFile != "" && !filepath.IsAbs(pr.AWSCredentialsFile) {
			v.add(pp+".awsCredentialsFile", "%q must be an absolute path", pr.AWSCredentialsFile)
		}
		if pr.AWSProfile != "" && pr.AWSCredentialsFile == "" {
			v.add(pp+".awsProfile", "needs awsCredentialsFile")
		}
	}
	seen := uniq{}
	for i, m := range pr.Models {
		mp := idx(pp+".models", i)
		if m.Name == "" {
			v.add(mp+".name", "is required")
		}
		v.unique(seen, mp+".name", m.Name, "provider model")
		for _, f := range [...]struct {
			name string
			x    float64
		}{{"inputPerMTok", m.InputPerMTok}, {"cachedInputPerMTok", m.CachedInputPerMTok}, {"outputPerMTok", m.OutputPerMTok}} {
			if f.x < 0 || f.x > MaxPriceUSDPerMTok {
				v.add(mp+"."+f.name, "%v is outside 0..%d USD per million tokens", f.x, MaxPriceUSDPerMTok)
			}
		}
	}
}

// spillOver checks a model's spillOverInFlight: it needs a pool route to
// measure and a fallback to spill to.
func (v *validator) spillOver(mp string, m Model) {
	if m.SpillOverInFlight == 0 {
		return
	}
	switch {
	case m.SpillOverInFlight < 0 || m.SpillOverInFlight > MaxSpillOverInFlight:
		v.add(mp+".spillOverInFlight", "%d is outside 1..%d", m.SpillOverInFlight, MaxSpillOverInFlight)
	case len(m.Fallback) == 0:
		v.add(mp+".spillOverInFlight", "needs a fallback route to spill over to")
	case !slices.ContainsFunc(m.Routes, func(r Route) bool { return r.Pool != "" }):
		v.add(mp+".spillOverInFlight", "needs a route to a pool, whose load it measures")
	}
}

// MaxSpillOverInFlight bounds spillOverInFlight.
const MaxSpillOverInFlight = 1 << 20

// providerNeedsBaseURL: the kinds with no public default endpoint.
func providerNeedsBaseURL(pr Provider) bool {
	k := pr.ProviderKind()
	return k == ProviderOpenAI || k == ProviderAzure
}
