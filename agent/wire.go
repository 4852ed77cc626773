package agent

import "github.com/infergate/infergate/agent/api"

// The local API's wire types are agent/api's, shared with the CLI client.
type (
	Status          = api.Status
	PolicyRef       = api.PolicyRef
	InterfaceStatus = api.Interface
	BackendStatus   = api.Backend
	LoadStatus      = api.Load
	StatsResponse   = api.Stats
	VIPStats        = api.VIPStats
	MapStats        = api.MapStats
	PolicyVersion   = api.PolicyVersion
	ApplyResult     = api.ApplyResult
	KeyRequest      = api.KeyRequest
	CreatedKey      = api.CreatedKey
	KeyInfo         = api.Key
	ErrorResponse   = api.ErrorResponse
)
