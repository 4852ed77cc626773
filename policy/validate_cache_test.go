package policy

import "testing"

// TestCacheProblems: each mistake in spec.gateway.cache is reported at its
// path and line.
func TestCacheProblems(t *testing.T) {
	const gw = minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]"
	cases := []struct{ name, doc, path, msg string }{
		{"model cache without gateway cache", minimal + pool + "\n  gateway:\n    models:\n      - name: m\n        routes: [{pool: p}]\n        cache: #<\n          semantic: true",
			"spec.gateway.models[0].cache", "needs spec.gateway.cache"},
		{"semantic without config", gw + "\n        cache:\n          semantic: true #<\n    cache:\n      ttl: 1m",
			"spec.gateway.models[0].cache.semantic", "needs spec.gateway.cache.semantic"},
		{"negative memory", gw + "\n    cache:\n      memoryBytes: -1 #<", "spec.gateway.cache.memoryBytes", "is outside"},
		{"entry over memory", gw + "\n    cache:\n      memoryBytes: 1000\n      maxEntryBytes: 2000 #<", "spec.gateway.cache.maxEntryBytes", "larger than memoryBytes"},
		{"short ttl", gw + "\n    cache:\n      ttl: 10ms #<", "spec.gateway.cache.ttl", "is outside"},
		{"redis without limit store", gw + "\n    cache:\n      redis: true #<", "spec.gateway.cache.redis", "needs spec.gateway.limitStore.redis"},
		{"unknown embeddings model", gw + "\n        cache: {semantic: true}\n    cache:\n      semantic:\n        embeddingsModel: nope #<", "spec.gateway.cache.semantic.embeddingsModel", `"nope" is not a model`},
		{"missing embeddings model", gw + "\n        cache: {semantic: true}\n    cache:\n      semantic: #<\n        threshold: 0.9", "spec.gateway.cache.semantic.embeddingsModel", "is required"},
		{"threshold too high", gw + "\n        cache: {semantic: true}\n    cache:\n      semantic:\n        embeddingsModel: m\n        threshold: 1.5 #<", "spec.gateway.cache.semantic.threshold", "is outside"},
		{"negative entries", gw + "\n        cache: {semantic: true}\n    cache:\n      semantic:\n        embeddingsModel: m\n        maxEntries: -1 #<", "spec.gateway.cache.semantic.maxEntries", "is outside"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantProblem(t, c.doc, c.path, c.msg) })
	}
}
