package agent

import (
	"context"
	"errors"

	"github.com/infergate/infergate/policy"
)

// Source is a second source of desired state beside the policy file and
// the local API: the cluster (package cluster). Run hands it apply, which
// takes a whole policy document through Apply, the path `infergate policy
// apply` takes (decode, validate, compile, check against this node, then
// kernel, L7 and store all or nothing), and returns the version in force.
// A document the node refuses leaves what runs untouched; apply's error is
// then a *policy.ValidationError listing every problem. Run returns when
// ctx ends.
//
// The source starts once the stored policy is back in force, so a node
// whose source is unreachable at start runs what it last applied.
type Source interface {
	Run(ctx context.Context, apply func(ctx context.Context, doc []byte) (version string, err error)) error
}

// ApplyFromSource is the apply a Source is given (Run hands it over; tests
// and benchmarks that drive a Source themselves use it too).
func (a *Agent) ApplyFromSource(ctx context.Context, doc []byte) (string, error) {
	res, err := a.Apply(ctx, doc, false)
	var ie *InvalidError
	if errors.As(err, &ie) {
		return "", &policy.ValidationError{Problems: ie.Problems}
	}
	if err != nil {
		return "", err
	}
	return res.Version, nil
}
