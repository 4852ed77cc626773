package agent

import "github.com/infergate/infergate/agent/api"

// The local API's wire types are agent/api's, shared with the CLI client;
// the agent uses them by their own names (api.Backend, api.Stats, ...).
// These aliases keep the same names for the types that other files of the
// package still name unqualified.
type (
	Status        = api.Status
	PolicyRef     = api.PolicyRef
	VIPStats      = api.VIPStats
	MapStats      = api.MapStats
	PolicyVersion = api.PolicyVersion
	ApplyResult   = api.ApplyResult
	KeyRequest    = api.KeyRequest
	CreatedKey    = api.CreatedKey
	ErrorResponse = api.ErrorResponse
)
