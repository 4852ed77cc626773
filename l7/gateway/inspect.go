package gateway

import (
	"github.com/infergate/infergate/l7/inspect"
	"github.com/infergate/infergate/policy"
)

// newInspector adapts l7/inspect to the gateway's Inspector.
func newInspector(p policy.Inspection) (Inspector, error) {
	in, err := inspect.New(p)
	if err != nil {
		return nil, err
	}
	return inspectAdapter{in}, nil
}

type inspectAdapter struct{ in *inspect.Inspector }

func (a inspectAdapter) Inspect(texts []string) (InspectResult, error) {
	v, out := a.in.Inspect(texts)
	var res InspectResult
	if len(v.Findings) > 0 {
		res.Matches = make([]Match, len(v.Findings))
		for i, f := range v.Findings {
			res.Matches[i] = Match{Rule: f.Rule, Action: f.Action.String()}
			if v.Blocked && res.Block == nil && f.Rule == v.Reason {
				res.Block = &res.Matches[i]
			}
		}
	}
	if v.Blocked && res.Block == nil {
		res.Block = &Match{Rule: v.Reason, Action: "block"}
	}
	// Inspect returns the caller's slice unless it rewrote something.
	if !v.Blocked && len(out) == len(texts) && len(out) > 0 && &out[0] != &texts[0] {
		res.Redacted = out
	}
	return res, nil
}
