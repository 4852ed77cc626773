package gateway

import (
	"errors"

	"github.com/infergate/infergate/policy"
)

// newInspector adapts l7/inspect; replaced once that package lands.
func newInspector(policy.Inspection) (Inspector, error) {
	return nil, errors.New("prompt inspection is not available in this build")
}
