package policy

// PoolKVEvents subscribes the gateway to the pool's engines' KV-cache
// events (vLLM's --kv-events-config publisher: ZeroMQ PUB, msgpack), so
// it routes a prompt to the backend whose KV cache holds its longest
// prefix, as the engine reports it. Present turns it on, and puts the
// pool under the gateway's load-aware picker (l7/pick) as loadReports
// does; without loadReports its backends keep their static weights.
type PoolKVEvents struct {
	// Port: each backend's publisher is tcp://<backend address>:<port>
	// (vLLM's default endpoint is tcp://*:5557). Either this or
	// Endpoints.
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// Endpoints names each backend's publisher, tcp://host:port, where
	// they are not the backends' own addresses.
	Endpoints []KVEventsEndpoint `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// BlockSize is the engines' tokens per KV block (default 16, vLLM's).
	BlockSize int `yaml:"blockSize,omitempty" json:"blockSize,omitempty"`
	// HashSeed is the engines' PYTHONHASHSEED, the seed of the first
	// block's hash (engines must run with a fixed one, and
	// --prefix-caching-hash-algo sha256_cbor_64bit).
	HashSeed string `yaml:"hashSeed,omitempty" json:"hashSeed,omitempty"`
	// Encoding tokenizes prompts as the engines' model does:
	// cl100k_base (default) or o200k_base.
	Encoding string `yaml:"encoding,omitempty" json:"encoding,omitempty"`
}

// KVEventsEndpoint is one backend's KV-event publisher.
type KVEventsEndpoint struct {
	Backend  string `yaml:"backend" json:"backend"`
	Endpoint string `yaml:"endpoint" json:"endpoint"`
}

// Defaults of PoolKVEvents.
const (
	DefaultKVBlockSize = 16
	DefaultKVEncoding  = "cl100k_base"
	maxKVBlockSize     = 1024
	maxKVHashSeed      = 256
)

// clone copies k (nil stays nil) with its defaults filled.
func (k *PoolKVEvents) clone() *PoolKVEvents {
	if k == nil {
		return nil
	}
	c := *k
	c.Endpoints = append([]KVEventsEndpoint(nil), k.Endpoints...)
	if c.BlockSize == 0 {
		c.BlockSize = DefaultKVBlockSize
	}
	if c.Encoding == "" {
		c.Encoding = DefaultKVEncoding
	}
	return &c
}
