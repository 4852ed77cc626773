package agent

import (
	"time"

	"github.com/infergate/infergate/policy"
)

// The local API's wire types, in the shape of docs/contracts (agent local
// API). They move to agent/api once that package exists.

// Status answers GET /v1/status.
type Status struct {
	Version         string            `json:"version"`
	Role            string            `json:"role"`
	Policy          PolicyRef         `json:"policy"`
	Interfaces      []InterfaceStatus `json:"interfaces"`
	StartedAt       time.Time         `json:"startedAt"`
	Reconciles      uint64            `json:"reconciles"`
	ReconcileErrors uint64            `json:"reconcileErrors"`
	LastError       string            `json:"lastError,omitempty"`
}

// PolicyRef names the policy in force.
type PolicyRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// InterfaceStatus is one interface an XDP program is (to be) attached to.
type InterfaceStatus struct {
	Name     string `json:"name"`
	Program  string `json:"program"` // balancer | decap
	Mode     string `json:"mode"`    // native | generic
	Attached bool   `json:"attached"`
}

// BackendStatus answers GET /v1/backends, one per pool backend.
type BackendStatus struct {
	Pool             string      `json:"pool"`
	Name             string      `json:"name"`
	Address          string      `json:"address"`
	Port             uint16      `json:"port"`
	ConfiguredWeight uint32      `json:"configuredWeight"`
	Weight           uint32      `json:"weight"`
	State            string      `json:"state"` // active | draining
	Healthy          bool        `json:"healthy"`
	Load             *LoadStatus `json:"load,omitempty"`
	Packets          uint64      `json:"packets"`
	Bytes            uint64      `json:"bytes"`
	NewFlows         uint64      `json:"newFlows"`
}

// LoadStatus is a backend's last GPU load report.
type LoadStatus struct {
	KVCacheUsage float64 `json:"kvCacheUsage"`
	Running      float64 `json:"running"`
	Waiting      float64 `json:"waiting"`
	GPUUtil      float64 `json:"gpuUtil"`
	Stale        bool    `json:"stale"`
}

// StatsResponse answers GET /v1/stats.
type StatsResponse struct {
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

// MapStats says how full a map is.
type MapStats struct {
	Name       string `json:"name"`
	Entries    uint64 `json:"entries"`
	MaxEntries uint64 `json:"maxEntries"`
}

// PolicyVersion is one applied version; Document is omitted in history.
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

// CreatedKey is shown once; only its hash is kept.
type CreatedKey struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	Key    string `json:"key"`
}

// KeyInfo lists a key without revealing it.
type KeyInfo struct {
	Name       string `json:"name"`
	Tenant     string `json:"tenant"`
	HashPrefix string `json:"hashPrefix"`
}

// ErrorResponse is every 4xx/5xx body.
type ErrorResponse struct {
	Error    string           `json:"error"`
	Problems []policy.Problem `json:"problems,omitempty"`
}
