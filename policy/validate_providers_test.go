package policy

import "testing"

// TestProviderKindProblems: each provider kind's requirements, with the
// line of the offending field.
func TestProviderKindProblems(t *testing.T) {
	const gw = minimal + "\n  gateway:\n    providers:\n"
	cases := []struct{ name, doc, path, msg string }{
		{"unknown kind", gw + "      - name: o\n        baseURL: https://x\n        kind: cohere #<", "spec.gateway.providers[0].kind", `"cohere" is not a provider kind`},
		{"azure needs url", gw + "      - name: o #<\n        kind: azure-openai\n        apiKeyEnv: K", "spec.gateway.providers[0].baseURL", "is required"},
		{"azure needs key", gw + "      - name: o #<\n        kind: azure-openai\n        baseURL: https://acme.openai.azure.example", "spec.gateway.providers[0]", "kind azure-openai needs apiKeyFile or apiKeyEnv"},
		{"azure auth", gw + "      - name: o\n        kind: azure-openai\n        baseURL: https://a\n        apiKeyEnv: K\n        auth: basic #<", "spec.gateway.providers[0].auth", `"basic" is not api-key or bearer`},
		{"anthropic needs key", gw + "      - name: o #<\n        kind: anthropic", "spec.gateway.providers[0]", "kind anthropic needs apiKeyFile or apiKeyEnv"},
		{"gemini needs key", gw + "      - name: o #<\n        kind: gemini", "spec.gateway.providers[0]", "kind gemini needs apiKeyFile or apiKeyEnv"},
		{"max tokens on gemini", gw + "      - name: o\n        kind: gemini\n        apiKeyEnv: K\n        maxTokens: 5 #<", "spec.gateway.providers[0].maxTokens", "applies only to kind anthropic, not gemini"},
		{"negative max tokens", gw + "      - name: o\n        kind: anthropic\n        apiKeyEnv: K\n        maxTokens: -5 #<", "spec.gateway.providers[0].maxTokens", "must be positive"},
		{"region on openai", gw + "      - name: o\n        baseURL: https://x\n        region: us-east-1 #<", "spec.gateway.providers[0].region", "applies only to kind bedrock, not openai"},
		{"bedrock needs region", gw + "      - name: o #<\n        kind: bedrock", "spec.gateway.providers[0].region", "is required for kind bedrock"},
		{"bedrock region shape", gw + "      - name: o\n        kind: bedrock\n        region: Virginia #<", "spec.gateway.providers[0].region", `"Virginia" is not an AWS region name`},
		{"bedrock api key", gw + "      - name: o #<\n        kind: bedrock\n        region: us-east-1\n        apiKeyEnv: K", "spec.gateway.providers[0]", "kind bedrock signs with AWS credentials"},
		{"bedrock relative file", gw + "      - name: o\n        kind: bedrock\n        region: us-east-1\n        awsCredentialsFile: creds #<", "spec.gateway.providers[0].awsCredentialsFile", `"creds" must be an absolute path`},
		{"bedrock profile alone", gw + "      - name: o\n        kind: bedrock\n        region: us-east-1\n        awsProfile: p #<", "spec.gateway.providers[0].awsProfile", "needs awsCredentialsFile"},
		{"anthropic version on gemini", gw + "      - name: o\n        kind: gemini\n        apiKeyEnv: K\n        apiVersion: v1 #<", "spec.gateway.providers[0].apiVersion", "applies only to kind azure-openai, not gemini"},
		{"price name", gw + "      - name: o\n        baseURL: https://x\n        models:\n          - inputPerMTok: 1 #<", "spec.gateway.providers[0].models[0].name", "is required"},
		{"negative cached price", gw + "      - name: o\n        baseURL: https://x\n        models:\n          - name: m\n            cachedInputPerMTok: -1 #<", "spec.gateway.providers[0].models[0].cachedInputPerMTok", "-1 is outside 0.."},
		{"spill without fallback", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        spillOverInFlight: 4 #<", "spec.gateway.models[0].spillOverInFlight", "needs a fallback route"},
		{"spill without pool", minimal + "\n  gateway:\n    providers: [{name: o, baseURL: https://x}]\n    models:\n      - name: m\n        routes: [{provider: o}]\n        fallback: [{provider: o}]\n        spillOverInFlight: 4 #<", "spec.gateway.models[0].spillOverInFlight", "needs a route to a pool"},
		{"spill negative", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        fallback: [{pool: p}]\n        spillOverInFlight: -1 #<", "spec.gateway.models[0].spillOverInFlight", "-1 is outside 1.."},
		{"dup price", gw + "      - name: o\n        baseURL: https://x\n        models:\n          - name: m\n          - name: m #<", "spec.gateway.providers[0].models[1].name", `duplicate provider model "m"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantProblem(t, c.doc, c.path, c.msg) })
	}
}
