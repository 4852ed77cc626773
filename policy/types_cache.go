package policy

// ResponseCache (spec.gateway.cache) answers repeated requests from stored
// answers instead of the upstream (see l7/cache). Absent, nothing is
// cached. By default only deterministic requests (temperature 0) are
// cached; a model may opt all its requests in (models[].cache).
type ResponseCache struct {
	// MemoryBytes bounds the in-memory store, evicted least recently used
	// first (default 64 MiB).
	MemoryBytes int64 `yaml:"memoryBytes,omitempty" json:"memoryBytes,omitempty"`
	// MaxEntryBytes bounds one stored answer (default 1 MiB); a larger
	// answer is passed on but not stored.
	MaxEntryBytes int64 `yaml:"maxEntryBytes,omitempty" json:"maxEntryBytes,omitempty"`
	// TTL is how long an answer is served from the cache (default 10m).
	TTL Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// Redis also keeps answers in the limit store's Redis (limitStore.redis,
	// with its credentials and TLS), shared by every gateway replica.
	Redis bool `yaml:"redis,omitempty" json:"redis,omitempty"`
	// ShareAcrossTenants lets tenants answer each other's requests from the
	// cache (default: each tenant has its own entries).
	ShareAcrossTenants bool `yaml:"shareAcrossTenants,omitempty" json:"shareAcrossTenants,omitempty"`
	// BillHits charges a hit against limits and cost as if the upstream had
	// answered it (default: a hit costs nothing and is recorded as cached).
	BillHits bool `yaml:"billHits,omitempty" json:"billHits,omitempty"`
	// Semantic configures the semantic cache that models opt into.
	Semantic *SemanticCache `yaml:"semantic,omitempty" json:"semantic,omitempty"`
}

// SemanticCache answers a request whose last user message is close in
// meaning to one already answered (same model, scope and everything else).
type SemanticCache struct {
	// EmbeddingsModel names the gateway model (spec.gateway.models) whose
	// routes serve /v1/embeddings; the last user message is embedded there.
	EmbeddingsModel string `yaml:"embeddingsModel" json:"embeddingsModel"`
	// Threshold is the cosine similarity at or above which a stored answer
	// is served, 0 < threshold <= 1 (default 0.95).
	Threshold float64 `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	// MaxEntries bounds the vectors kept, oldest evicted first (default 10000).
	MaxEntries int `yaml:"maxEntries,omitempty" json:"maxEntries,omitempty"`
	// Timeout bounds the embeddings call (default 2s); past it the request
	// goes on as a miss.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// ModelCache is one model's use of spec.gateway.cache.
type ModelCache struct {
	// Disabled keeps this model's answers out of the cache.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// NonDeterministic caches this model's requests whatever their
	// temperature (default: only temperature 0).
	NonDeterministic bool `yaml:"nonDeterministic,omitempty" json:"nonDeterministic,omitempty"`
	// Semantic turns the semantic cache on for this model.
	Semantic bool `yaml:"semantic,omitempty" json:"semantic,omitempty"`
}

func (c *ResponseCache) clone() *ResponseCache {
	if c == nil {
		return nil
	}
	out := *c
	if c.Semantic != nil {
		s := *c.Semantic
		out.Semantic = &s
	}
	return &out
}
