package policy

import "time"

// Bounds of spec.gateway.cache.
const (
	maxCacheMemoryBytes = 64 << 30
	maxCacheEntryBytes  = 32 << 20
	maxSemanticEntries  = 10_000_000
	minCacheTTL         = time.Second
	maxCacheTTL         = 30 * 24 * time.Hour
	maxSemanticTimeout  = time.Minute
)

// cache checks spec.gateway.cache and the models' use of it.
func (v *validator) cache(p string, g *Gateway) {
	c := g.Cache
	if c == nil {
		for i, m := range g.Models {
			if m.Cache != (ModelCache{}) {
				v.add(modelPath(i)+".cache", "needs spec.gateway.cache")
			}
		}
		return
	}
	if c.MemoryBytes < 0 || c.MemoryBytes > maxCacheMemoryBytes {
		v.add(p+".memoryBytes", "%d is outside 0..%d", c.MemoryBytes, int64(maxCacheMemoryBytes))
	}
	if c.MaxEntryBytes < 0 || c.MaxEntryBytes > maxCacheEntryBytes {
		v.add(p+".maxEntryBytes", "%d is outside 0..%d", c.MaxEntryBytes, maxCacheEntryBytes)
	}
	if c.MemoryBytes > 0 && c.MaxEntryBytes > c.MemoryBytes {
		v.add(p+".maxEntryBytes", "%d is larger than memoryBytes %d", c.MaxEntryBytes, c.MemoryBytes)
	}
	if c.TTL != 0 {
		v.duration(p+".ttl", c.TTL, minCacheTTL, maxCacheTTL)
	}
	if c.Redis && g.Limits.Redis == "" {
		v.add(p+".redis", "needs spec.gateway.limitStore.redis (the cache uses its connection settings)")
	}
	for i, m := range g.Models {
		if m.Cache.Semantic && c.Semantic == nil {
			v.add(modelPath(i)+".cache.semantic", "needs spec.gateway.cache.semantic")
		}
	}
	s := c.Semantic
	if s == nil {
		return
	}
	sp := p + ".semantic"
	if s.EmbeddingsModel == "" {
		v.add(sp+".embeddingsModel", "is required")
	} else if !modelNamed(g.Models, s.EmbeddingsModel) {
		v.add(sp+".embeddingsModel", "%q is not a model or alias of spec.gateway.models", truncate(s.EmbeddingsModel, 80))
	}
	if s.Threshold < 0 || s.Threshold > 1 {
		v.add(sp+".threshold", "%v is outside 0..1", s.Threshold)
	}
	if s.MaxEntries < 0 || s.MaxEntries > maxSemanticEntries {
		v.add(sp+".maxEntries", "%d is outside 0..%d", s.MaxEntries, maxSemanticEntries)
	}
	if s.Timeout != 0 {
		v.duration(sp+".timeout", s.Timeout, time.Millisecond, maxSemanticTimeout)
	}
}

func modelPath(i int) string { return idx("spec.gateway.models", i) }

func modelNamed(ms []Model, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
		for _, a := range m.Aliases {
			if a == name {
				return true
			}
		}
	}
	return false
}
