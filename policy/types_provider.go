package policy

// Provider kinds: the API an external provider speaks. Every kind but
// openai is reached through a translation (l7/translate/outbound), so
// clients keep speaking the OpenAI API whichever provider serves them.
const (
	ProviderOpenAI    = "openai"
	ProviderAzure     = "azure-openai"
	ProviderAnthropic = "anthropic"
	ProviderBedrock   = "bedrock"
	ProviderGemini    = "gemini"
)

// ProviderKinds lists the kinds in the order the documentation gives them.
var ProviderKinds = []string{ProviderOpenAI, ProviderAzure, ProviderAnthropic, ProviderBedrock, ProviderGemini}

// ProviderModel prices one model of a provider, in USD per million tokens.
// A request the provider serves is billed at these prices instead of the
// gateway model's price; cached input (prompt tokens the provider read from
// its prompt cache, as its usage reports them) at CachedInputPerMTok.
type ProviderModel struct {
	// Name is the model as the provider knows it (a route's upstreamModel).
	Name               string  `yaml:"name" json:"name"`
	InputPerMTok       float64 `yaml:"inputPerMTok,omitempty" json:"inputPerMTok,omitempty"`
	CachedInputPerMTok float64 `yaml:"cachedInputPerMTok,omitempty" json:"cachedInputPerMTok,omitempty"`
	OutputPerMTok      float64 `yaml:"outputPerMTok,omitempty" json:"outputPerMTok,omitempty"`
}

// ProviderKind is p's kind with the default applied.
func (p *Provider) ProviderKind() string {
	if p.Kind == "" {
		return ProviderOpenAI
	}
	return p.Kind
}

// GenAIProviderName is OpenTelemetry's gen_ai.provider.name for a kind.
func GenAIProviderName(kind string) string {
	switch kind {
	case ProviderAzure:
		return "azure.ai.openai"
	case ProviderAnthropic:
		return "anthropic"
	case ProviderBedrock:
		return "aws.bedrock"
	case ProviderGemini:
		return "gcp.gemini"
	}
	return "openai"
}
