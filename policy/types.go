// Package policy holds infergate's declarative document: its YAML shape
// (Document and Spec), its decoding and validation, and the compiled form
// that the agent's reconciler turns into kernel maps and the L7 gateway
// turns into its stage chain.
//
// The Spec types are the single source of truth for the user-facing schema:
// every other package consumes the compiled form, never raw YAML.
package policy

// APIVersion and Kind identify a policy document.
const (
	APIVersion = "infergate.dev/v1alpha1"
	Kind       = "Policy"
)

// Document is one YAML policy document.
type Document struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`

	// pos maps field paths to the lines Decode read them from, so Validate
	// can say where a problem is. Nil for documents built in Go.
	pos map[string]int
}

// Metadata names a document. Labels are free-form and bounded.
type Metadata struct {
	Name   string            `yaml:"name" json:"name"`
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Spec is everything an operator declares.
type Spec struct {
	Dataplane Dataplane `yaml:"dataplane,omitempty" json:"dataplane,omitempty"`
	Pools     []Pool    `yaml:"pools,omitempty" json:"pools,omitempty"`
	Gateway   Gateway   `yaml:"gateway,omitempty" json:"gateway,omitempty"`
}

// Dataplane is the XDP side: where it attaches, who may send, how fast, and
// which VIPs it steers.
type Dataplane struct {
	// Interfaces the balancer program attaches to.
	Interfaces []string `yaml:"interfaces,omitempty" json:"interfaces,omitempty"`
	// DecapInterfaces the decapsulator attaches to (GPU hosts).
	DecapInterfaces []string `yaml:"decapInterfaces,omitempty" json:"decapInterfaces,omitempty"`
	// XDPMode is native (default), generic, or auto (native, falling back to
	// generic with a warning).
	XDPMode    string     `yaml:"xdpMode,omitempty" json:"xdpMode,omitempty"`
	Firewall   Firewall   `yaml:"firewall,omitempty" json:"firewall,omitempty"`
	RateLimits RateLimits `yaml:"rateLimits,omitempty" json:"rateLimits,omitempty"`
	VIPs       []VIP      `yaml:"vips,omitempty" json:"vips,omitempty"`
	// LocalVIPs are the VIPs this host's decapsulator accepts (GPU hosts).
	LocalVIPs []string `yaml:"localVIPs,omitempty" json:"localVIPs,omitempty"`
	// DecapSources are the balancers' encapsulation sources (addresses or
	// prefixes): the only outer sources whose IPIP and IPv6-in-IPv6
	// packets the decapsulator accepts (GPU hosts). Empty accepts none.
	DecapSources []string `yaml:"decapSources,omitempty" json:"decapSources,omitempty"`
	// BGP announces the VIPs to routers (balancers); nil announces nothing.
	BGP *BGP `yaml:"bgp,omitempty" json:"bgp,omitempty"`
}

// Firewall is an ordered-by-specificity set of source rules.
type Firewall struct {
	// DefaultAction applies to sources no rule matches: allow (default) or deny.
	DefaultAction string         `yaml:"defaultAction,omitempty" json:"defaultAction,omitempty"`
	Rules         []FirewallRule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// FirewallRule allows or denies sources, each an address ("198.18.0.1",
// "2001:db8::1") or a prefix ("198.18.0.0/24"). Ports and Protocol narrow
// the rule to some destinations; empty means any.
type FirewallRule struct {
	Name     string   `yaml:"name" json:"name"`
	Action   string   `yaml:"action" json:"action"` // allow | deny
	Sources  []string `yaml:"sources" json:"sources"`
	Ports    []int    `yaml:"ports,omitempty" json:"ports,omitempty"`
	Protocol string   `yaml:"protocol,omitempty" json:"protocol,omitempty"` // tcp | udp | icmp | any
}

// RateLimits configures the per-client token buckets in XDP.
type RateLimits struct {
	// AggregateV4 and AggregateV6 are the prefix lengths client addresses are
	// folded to before bucketing (defaults 32 and 64).
	AggregateV4 int           `yaml:"aggregateV4,omitempty" json:"aggregateV4,omitempty"`
	AggregateV6 int           `yaml:"aggregateV6,omitempty" json:"aggregateV6,omitempty"`
	Classes     []ClientClass `yaml:"classes,omitempty" json:"classes,omitempty"`
}

// ClientClass gives the sources it matches (longest prefix wins) their limits.
// A zero rate means unlimited.
type ClientClass struct {
	Name              string   `yaml:"name" json:"name"`
	Sources           []string `yaml:"sources" json:"sources"`
	PacketsPerSecond  uint64   `yaml:"packetsPerSecond,omitempty" json:"packetsPerSecond,omitempty"`
	PacketBurst       uint64   `yaml:"packetBurst,omitempty" json:"packetBurst,omitempty"`
	NewConnsPerSecond uint64   `yaml:"newConnsPerSecond,omitempty" json:"newConnsPerSecond,omitempty"`
	NewConnBurst      uint64   `yaml:"newConnBurst,omitempty" json:"newConnBurst,omitempty"`
}

// VIP is a virtual service address steered in XDP to a pool.
type VIP struct {
	Name     string `yaml:"name" json:"name"`
	Address  string `yaml:"address" json:"address"`
	Port     int    `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"` // tcp (default) | udp
	Pool     string `yaml:"pool" json:"pool"`
	// Forwarding is ipip (default, direct server return through an IPIP
	// tunnel) or l2 (MAC rewrite, backends on the same segment).
	Forwarding string `yaml:"forwarding,omitempty" json:"forwarding,omitempty"`
	// NewConnsPerSecond guards the VIP as a whole against floods; 0 = off.
	NewConnsPerSecond uint64 `yaml:"newConnsPerSecond,omitempty" json:"newConnsPerSecond,omitempty"`
	NewConnBurst      uint64 `yaml:"newConnBurst,omitempty" json:"newConnBurst,omitempty"`
	// NewFlowBudget bounds the new flows per second from sources with no
	// established flow (what a spoofed-source SYN flood sends); known
	// clients do not spend it. 0 takes the default; it drops nothing below
	// its rate.
	NewFlowBudget      uint64 `yaml:"newFlowBudget,omitempty" json:"newFlowBudget,omitempty"`
	NewFlowBudgetBurst uint64 `yaml:"newFlowBudgetBurst,omitempty" json:"newFlowBudgetBurst,omitempty"`
}

// Pool is a set of GPU backends, used both by VIPs (L4) and by model routes (L7).
type Pool struct {
	Name        string       `yaml:"name" json:"name"`
	Backends    []Backend    `yaml:"backends" json:"backends"`
	HealthCheck *HealthCheck `yaml:"healthCheck,omitempty" json:"healthCheck,omitempty"`
	// LoadReports turns on GPU-load weighting from each backend's load report.
	LoadReports bool `yaml:"loadReports,omitempty" json:"loadReports,omitempty"`
	// TLS makes the L7 gateway reach the backends over HTTPS (absent:
	// plain HTTP/1.1 through its own connection pool).
	TLS *PoolTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// KVEvents routes by the engines' own KV-cache events (types_kvevents.go).
	KVEvents *PoolKVEvents `yaml:"kvEvents,omitempty" json:"kvEvents,omitempty"`
}

// Backend is one GPU host.
type Backend struct {
	Name    string `yaml:"name" json:"name"`
	Address string `yaml:"address" json:"address"`
	// Port is the inference server's port, for L7 routing and health checks.
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// Weight is relative to the pool's other backends; 0 takes no new
	// connections or requests. Decode gives an absent weight 100; a Document
	// built in Go must set it.
	Weight uint32 `yaml:"weight,omitempty" json:"weight,omitempty" default:"100"`
	State  string `yaml:"state,omitempty" json:"state,omitempty"` // active (default) | draining
	// LoadReportURL is where the host's agent serves its GPU load report.
	LoadReportURL string `yaml:"loadReportURL,omitempty" json:"loadReportURL,omitempty"`
}

// HealthCheck probes each backend of a pool.
type HealthCheck struct {
	Type     string   `yaml:"type" json:"type"` // tcp | http
	Port     int      `yaml:"port,omitempty" json:"port,omitempty"`
	Path     string   `yaml:"path,omitempty" json:"path,omitempty"`
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout  Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Rise     int      `yaml:"rise,omitempty" json:"rise,omitempty"`
	Fall     int      `yaml:"fall,omitempty" json:"fall,omitempty"`
}

// Gateway is the L7 side.
type Gateway struct {
	Listen     string      `yaml:"listen,omitempty" json:"listen,omitempty"`
	Tenants    []Tenant    `yaml:"tenants,omitempty" json:"tenants,omitempty"`
	Keys       []APIKey    `yaml:"keys,omitempty" json:"keys,omitempty"`
	JWT        []JWTIssuer `yaml:"jwt,omitempty" json:"jwt,omitempty"`
	Models     []Model     `yaml:"models,omitempty" json:"models,omitempty"`
	Providers  []Provider  `yaml:"providers,omitempty" json:"providers,omitempty"`
	Inspection Inspection  `yaml:"inspection,omitempty" json:"inspection,omitempty"`
	Limits     LimitStore  `yaml:"limitStore,omitempty" json:"limitStore,omitempty"`
	Audit      Audit       `yaml:"audit,omitempty" json:"audit,omitempty"`
	Timeouts   Timeouts    `yaml:"timeouts,omitempty" json:"timeouts,omitempty"`
	// MaxBodyBytes bounds a request body (default 4 MiB).
	MaxBodyBytes int64 `yaml:"maxBodyBytes,omitempty" json:"maxBodyBytes,omitempty"`
	// Tracing exports request spans (off by default).
	Tracing Tracing `yaml:"tracing,omitempty" json:"tracing,omitzero"`
	// Ledger records usage for billing (off by default).
	Ledger Ledger `yaml:"ledger,omitempty" json:"ledger,omitzero"`
	// TLS terminates TLS (HTTP/2 and HTTP/1.1) on the listener; absent
	// serves plain HTTP/1.1.
	TLS *GatewayTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// Cache answers repeated requests from stored answers (types_cache.go).
	Cache *ResponseCache `yaml:"cache,omitempty" json:"cache,omitempty"`
}

// Tenant is a customer of the gateway; limits apply to all its keys together.
type Tenant struct {
	Name   string `yaml:"name" json:"name"`
	Limits Limits `yaml:"limits,omitempty" json:"limits,omitempty"`
	// Allow narrows what the tenant's keys and tokens may call.
	Allow Allow `yaml:"allow,omitempty" json:"allow,omitzero"`
}

// Limits per tenant or per key. Zero means unlimited.
type Limits struct {
	RequestsPerMinute uint64  `yaml:"requestsPerMinute,omitempty" json:"requestsPerMinute,omitempty"`
	TokensPerMinute   uint64  `yaml:"tokensPerMinute,omitempty" json:"tokensPerMinute,omitempty"`
	Concurrent        uint64  `yaml:"concurrent,omitempty" json:"concurrent,omitempty"`
	BudgetUSD         float64 `yaml:"budgetUSD,omitempty" json:"budgetUSD,omitempty"`
	// BudgetWindow is how long a budget lasts before it resets (default 720h).
	BudgetWindow Duration `yaml:"budgetWindow,omitempty" json:"budgetWindow,omitempty"`
}

// APIKey maps a key, stored only as its hash, to a tenant.
type APIKey struct {
	Name   string `yaml:"name" json:"name"`
	Tenant string `yaml:"tenant" json:"tenant"`
	// Hash is "sha256:<64 hex digits>" of the whole key.
	Hash   string `yaml:"hash" json:"hash"`
	Limits Limits `yaml:"limits,omitempty" json:"limits,omitempty"`
	// Allow narrows what this key may call, within its tenant's Allow.
	Allow Allow `yaml:"allow,omitempty" json:"allow,omitzero"`
}

// JWTIssuer accepts bearer JWTs from one issuer.
type JWTIssuer struct {
	Issuer   string `yaml:"issuer" json:"issuer"`
	Audience string `yaml:"audience,omitempty" json:"audience,omitempty"`
	// Exactly one of HS256SecretFile, HS256SecretEnv or JWKSURL.
	HS256SecretFile string   `yaml:"hs256SecretFile,omitempty" json:"hs256SecretFile,omitempty"`
	HS256SecretEnv  string   `yaml:"hs256SecretEnv,omitempty" json:"hs256SecretEnv,omitempty"`
	JWKSURL         string   `yaml:"jwksURL,omitempty" json:"jwksURL,omitempty"`
	JWKSRefresh     Duration `yaml:"jwksRefresh,omitempty" json:"jwksRefresh,omitempty"`
	// Discovery reads the JWKS address (and the introspection endpoint)
	// from the issuer's /.well-known/openid-configuration instead of
	// jwksURL.
	Discovery bool `yaml:"discovery,omitempty" json:"discovery,omitempty"`
	// TenantClaim names the claim holding the tenant (default "tenant").
	TenantClaim string `yaml:"tenantClaim,omitempty" json:"tenantClaim,omitempty"`
	// KeyClaim names a claim whose value is the name of one of the
	// tenant's keys: the request then has that key's limits and Allow.
	KeyClaim string `yaml:"keyClaim,omitempty" json:"keyClaim,omitempty"`
	// ModelsClaim names a claim listing the models the token may call
	// (an array, or a space-separated string).
	ModelsClaim string `yaml:"modelsClaim,omitempty" json:"modelsClaim,omitempty"`
	// Introspection checks opaque bearer tokens with the issuer (RFC 7662).
	Introspection *Introspection `yaml:"introspection,omitempty" json:"introspection,omitempty"`
}

// Allow lists what a principal may call; an empty list allows all.
type Allow struct {
	// Models are model names (not aliases) of spec.gateway.models.
	Models []string `yaml:"models,omitempty" json:"models,omitempty"`
	// Endpoints are API paths, such as /v1/chat/completions.
	Endpoints []string `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
}

// Introspection asks the issuer about opaque bearer tokens (RFC 7662),
// authenticating as a client with HTTP Basic.
type Introspection struct {
	// URL of the introspection endpoint; with discovery it may be left
	// out and the issuer's introspection_endpoint is used.
	URL      string `yaml:"url,omitempty" json:"url,omitempty"`
	ClientID string `yaml:"clientID" json:"clientID"`
	// Exactly one of ClientSecretFile or ClientSecretEnv.
	ClientSecretFile string `yaml:"clientSecretFile,omitempty" json:"clientSecretFile,omitempty"`
	ClientSecretEnv  string `yaml:"clientSecretEnv,omitempty" json:"clientSecretEnv,omitempty"`
	// CacheTTL is how long an answer is reused (default 30s; never past
	// the token's exp): a revoked token is refused within it.
	CacheTTL Duration `yaml:"cacheTTL,omitempty" json:"cacheTTL,omitempty"`
	// MaxEntries bounds the cache (default 10000).
	MaxEntries int `yaml:"maxEntries,omitempty" json:"maxEntries,omitempty"`
}

// Model is a model name clients may ask for, and where it goes.
type Model struct {
	Name    string   `yaml:"name" json:"name"`
	Aliases []string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
	// Encoding is the tokenizer: cl100k_base or o200k_base (default from the
	// name where known, else cl100k_base).
	Encoding string `yaml:"encoding,omitempty" json:"encoding,omitempty"`
	Price    Price  `yaml:"price,omitempty" json:"price,omitempty"`
	// Routes are weighted splits (A/B, canary); Fallback is tried in order on
	// timeout, 5xx or 429.
	Routes   []Route  `yaml:"routes" json:"routes"`
	Fallback []Route  `yaml:"fallback,omitempty" json:"fallback,omitempty"`
	Timeouts Timeouts `yaml:"timeouts,omitempty" json:"timeouts,omitempty"`
	// Retries bounds fallback attempts; 0 tries only the first route. Decode
	// gives an absent value 2; set it in Go.
	Retries int `yaml:"retries,omitempty" json:"retries,omitempty" default:"2"`
	// Cache is this model's use of spec.gateway.cache (types_cache.go).
	Cache ModelCache `yaml:"cache,omitempty" json:"cache,omitzero"`
	// SpillOverInFlight: when every backend of the pool a request is
	// routed to has this many requests in flight from this gateway, the
	// request starts at the fallback (an external provider) instead of
	// queueing at the pool; 0 spills only on the pool's 429 and 5xx.
	SpillOverInFlight int `yaml:"spillOverInFlight,omitempty" json:"spillOverInFlight,omitempty"`
}

// Price in USD per million tokens.
type Price struct {
	InputPerMTok  float64 `yaml:"inputPerMTok,omitempty" json:"inputPerMTok,omitempty"`
	OutputPerMTok float64 `yaml:"outputPerMTok,omitempty" json:"outputPerMTok,omitempty"`
}

// Route sends to exactly one of a pool or a provider. UpstreamModel renames
// the model upstream (a model version behind a stable name).
type Route struct {
	Pool     string `yaml:"pool,omitempty" json:"pool,omitempty"`
	Provider string `yaml:"provider,omitempty" json:"provider,omitempty"`
	// Weight splits traffic between Routes (ignored in Fallback); 0 turns a
	// route off. Decode gives an absent weight 100; set it in Go.
	Weight        uint32 `yaml:"weight,omitempty" json:"weight,omitempty" default:"100"`
	UpstreamModel string `yaml:"upstreamModel,omitempty" json:"upstreamModel,omitempty"`
}

// Provider is an external OpenAI-compatible API. The key comes from a file or
// the environment, never from the client.
type Provider struct {
	Name       string `yaml:"name" json:"name"`
	BaseURL    string `yaml:"baseURL" json:"baseURL"`
	APIKeyFile string `yaml:"apiKeyFile,omitempty" json:"apiKeyFile,omitempty"`
	APIKeyEnv  string `yaml:"apiKeyEnv,omitempty" json:"apiKeyEnv,omitempty"`
	// CAFile is a PEM bundle of the CAs an https baseURL's certificate must
	// chain to, instead of the system roots.
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	// Kind is the provider's API (types_provider.go): openai (default),
	// azure-openai, anthropic, bedrock or gemini.
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty"`
	// APIVersion: azure-openai's api-version, anthropic's anthropic-version.
	APIVersion string `yaml:"apiVersion,omitempty" json:"apiVersion,omitempty"`
	// Auth (azure-openai): api-key (default, the api-key header) or bearer.
	Auth string `yaml:"auth,omitempty" json:"auth,omitempty"`
	// Region (bedrock) signs requests and names the default endpoint.
	Region string `yaml:"region,omitempty" json:"region,omitempty"`
	// AWSCredentialsFile (bedrock) is a shared credentials file, read again
	// when it changes; absent: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	AWSCredentialsFile string `yaml:"awsCredentialsFile,omitempty" json:"awsCredentialsFile,omitempty"`
	// AWSProfile is the file's profile (default "default").
	AWSProfile string `yaml:"awsProfile,omitempty" json:"awsProfile,omitempty"`
	// MaxTokens (anthropic) is max_tokens when the client sets none
	// (default 4096): the Messages API requires it.
	MaxTokens int `yaml:"maxTokens,omitempty" json:"maxTokens,omitempty"`
	// Models is the provider's price table by upstream model name.
	Models []ProviderModel `yaml:"models,omitempty" json:"models,omitempty"`
}

// GatewayTLS is the gateway listener's TLS: a certificate and key read from
// files (and read again when they change) and, optionally, client
// certificates that identify tenants.
type GatewayTLS struct {
	CertFile string `yaml:"certFile" json:"certFile"`
	KeyFile  string `yaml:"keyFile" json:"keyFile"`
	// ClientCAFile is a PEM bundle of the CAs client certificates must
	// chain to; required unless clientAuth is none.
	ClientCAFile string `yaml:"clientCAFile,omitempty" json:"clientCAFile,omitempty"`
	// ClientAuth: none (default), optional (a certificate, when sent, must
	// verify) or require.
	ClientAuth string `yaml:"clientAuth,omitempty" json:"clientAuth,omitempty"`
	// ClientTenants maps verified client certificates to tenants.
	ClientTenants []ClientTenant `yaml:"clientTenants,omitempty" json:"clientTenants,omitempty"`
}

// ClientTenant maps client certificates to a tenant by exactly one of a
// subject common name, a URI SAN, or a SPIFFE ID (a spiffe:// URI SAN).
type ClientTenant struct {
	CommonName string `yaml:"commonName,omitempty" json:"commonName,omitempty"`
	URI        string `yaml:"uri,omitempty" json:"uri,omitempty"`
	SPIFFEID   string `yaml:"spiffeID,omitempty" json:"spiffeID,omitempty"`
	Tenant     string `yaml:"tenant" json:"tenant"`
}

// Timeouts for one upstream attempt.
type Timeouts struct {
	Connect          Duration `yaml:"connect,omitempty" json:"connect,omitempty"`
	TimeToFirstToken Duration `yaml:"timeToFirstToken,omitempty" json:"timeToFirstToken,omitempty"`
	Total            Duration `yaml:"total,omitempty" json:"total,omitempty"`
}

// Inspection configures the prompt inspector.
type Inspection struct {
	MaxMessageBytes int              `yaml:"maxMessageBytes,omitempty" json:"maxMessageBytes,omitempty"`
	Rules           []InspectionRule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// InspectionRule applies one detector with one action.
type InspectionRule struct {
	Name string `yaml:"name" json:"name"`
	// Detector: email, phone, credit-card, iban, us-ssn, ip-address,
	// cloud-key, private-key, api-token, injection, unicode-smuggling,
	// regex (Pattern), deny-list (Words).
	Detector string   `yaml:"detector" json:"detector"`
	Pattern  string   `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	Words    []string `yaml:"words,omitempty" json:"words,omitempty"`
	Action   string   `yaml:"action" json:"action"` // block | redact | flag
}

// LimitStore chooses where L7 limit state lives.
type LimitStore struct {
	// Redis address (host:port); empty keeps state in memory.
	Redis string `yaml:"redis,omitempty" json:"redis,omitempty"`
	// FailOpen admits requests when Redis is unreachable (default: fail closed).
	FailOpen bool `yaml:"failOpen,omitempty" json:"failOpen,omitempty"`
	// Username is the Redis ACL user (default: Redis's default user); it
	// needs passwordFile.
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	// PasswordFile holds the Redis password on its first line (absolute
	// path). Read when the gateway starts; the password is never logged.
	PasswordFile string `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
	// TLS to Redis.
	TLS RedisTLS `yaml:"tls,omitempty" json:"tls,omitzero"`
}

// RedisTLS configures TLS (1.2 or later) to the limit store's Redis.
type RedisTLS struct {
	Enabled bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// CAFile holds the PEM roots that verify the server (absolute path;
	// default: the system's roots).
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and key, for a
	// server with tls-auth-clients (absolute paths; both or neither).
	CertFile string `yaml:"certFile,omitempty" json:"certFile,omitempty"`
	KeyFile  string `yaml:"keyFile,omitempty" json:"keyFile,omitempty"`
	// ServerName is the name the server's certificate must carry (default:
	// the host of redis).
	ServerName string `yaml:"serverName,omitempty" json:"serverName,omitempty"`
}

// Audit configures the JSON-lines audit log.
type Audit struct {
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// LogPrompts includes prompt text (after redaction). Off by default.
	LogPrompts bool `yaml:"logPrompts,omitempty" json:"logPrompts,omitempty"`
}
