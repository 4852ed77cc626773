// Package api holds the wire types of the node agent's local API (HTTP+JSON
// over a unix socket) and a Client for it. The agent serves these types; the
// CLI consumes them.
package api

import (
	"time"

	"github.com/infergate/infergate/policy"
)

// DefaultSocket is where the agent listens unless told otherwise.
const DefaultSocket = "/run/infergate/agent.sock"

// API paths.
const (
	PathStatus   = "/v1/status"
	PathBackends = "/v1/backends"
	PathStats    = "/v1/stats"
	PathPolicy   = "/v1/policy"
	PathHistory  = "/v1/policy/history"
	PathRollback = "/v1/policy/rollback"
	PathKeys     = "/v1/keys"
	PathDrain    = "/v1/drain"
)

// RollbackPrevious names the version before the current one in a rollback.
const RollbackPrevious = "previous"

// Status answers GET /v1/status.
type Status struct {
	Version         string      `json:"version"`
	Role            string      `json:"role,omitempty"`
	Policy          PolicyRef   `json:"policy"`
	Interfaces      []Interface `json:"interfaces"`
	StartedAt       time.Time   `json:"startedAt"`
	Reconciles      uint64      `json:"reconciles"`
	ReconcileErrors uint64      `json:"reconcileErrors"`
	LastError       string      `json:"lastError,omitempty"`
	// BGP is the VIP announcement of a balancer with spec.dataplane.bgp.
	BGP *BGPStatus `json:"bgp,omitempty"`
}

// PolicyRef names the policy in force (empty when none is applied).
type PolicyRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Interface is one interface an XDP program is (to be) attached to.
type Interface struct {
	Name     string `json:"name"`
	Program  string `json:"program"` // balancer | decap
	Mode     string `json:"mode"`    // native | generic
	Attached bool   `json:"attached"`
}

// Backend answers GET /v1/backends, one per pool backend.
type Backend struct {
	Pool             string `json:"pool"`
	Name             string `json:"name"`
	Address          string `json:"address"`
	Port             uint16 `json:"port"`
	ConfiguredWeight uint32 `json:"configuredWeight"`
	// Weight is the effective weight after GPU-load scoring.
	Weight   uint32 `json:"weight"`
	State    string `json:"state"` // active | draining
	Healthy  bool   `json:"healthy"`
	Load     *Load  `json:"load,omitempty"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"newFlows"`
	// L7 holds the gateway's counters for this backend when the agent has
	// them (an addition to the contract; absent means unknown).
	L7 *BackendL7 `json:"l7,omitempty"`
}

// Load is a backend's last GPU load report.
type Load struct {
	KVCacheUsage float64 `json:"kvCacheUsage"`
	Running      float64 `json:"running"`
	Waiting      float64 `json:"waiting"`
	GPUUtil      float64 `json:"gpuUtil"`
	Stale        bool    `json:"stale"`
}

// BackendL7 are cumulative gateway counters for one backend; clients compute
// rates from successive samples.
type BackendL7 struct {
	Requests         uint64 `json:"requests"`
	Errors           uint64 `json:"errors"`
	PromptTokens     uint64 `json:"promptTokens"`
	CompletionTokens uint64 `json:"completionTokens"`
	// TTFTSecondsSum over TTFTCount streamed responses gives mean time to
	// first token.
	TTFTSecondsSum float64 `json:"ttftSecondsSum"`
	TTFTCount      uint64  `json:"ttftCount"`
}

// Stats answers GET /v1/stats.
type Stats struct {
	Verdicts map[string]uint64 `json:"verdicts"`
	Drops    map[string]uint64 `json:"drops"`
	VIPs     []VIPStats        `json:"vips"`
	Maps     []MapStats        `json:"maps"`
}

// VIPStats is one VIP's traffic.
type VIPStats struct {
	Name     string `json:"name"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"newFlows"`
}

// MapStats says how full a kernel map is.
type MapStats struct {
	Name       string `json:"name"`
	Entries    uint64 `json:"entries"`
	MaxEntries uint64 `json:"maxEntries"`
}

// PolicyVersion is one applied version; Document (YAML) is omitted in history.
type PolicyVersion struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	AppliedAt time.Time `json:"appliedAt"`
	Document  string    `json:"document,omitempty"`
	Current   bool      `json:"current,omitempty"`
}

// ApplyResult answers an apply or a rollback.
type ApplyResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Changed bool   `json:"changed"`
	DryRun  bool   `json:"dryRun,omitempty"`
}

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
}

// CreatedKey is shown once; the agent keeps only its hash.
type CreatedKey struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	Key    string `json:"key"`
}

// Key lists a key without revealing it.
type Key struct {
	Name       string `json:"name"`
	Tenant     string `json:"tenant"`
	HashPrefix string `json:"hashPrefix"`
}

// ErrorResponse is every 4xx/5xx body.
type ErrorResponse struct {
	Error    string           `json:"error"`
	Problems []policy.Problem `json:"problems,omitempty"`
}
