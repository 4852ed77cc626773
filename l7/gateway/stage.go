package gateway

import (
	"fmt"

	"github.com/infergate/infergate/l7/openai"
)

// stage is one step of a POST endpoint's request path. serve reads and
// writes the exchange under the contract in doc.go; a non-nil error ends
// the chain and is sent to the client (finish still runs).
type stage interface {
	serve(x *exchange) *openai.Error
}

// stageFinisher is a stage that also acts once the exchange has ended
// (after settle, before metrics and audit), for example to learn from the
// outcome. It runs for every stage of the chain, whether or not the chain
// reached it.
type stageFinisher interface {
	finish(x *exchange)
}

// stageSpec registers a stage: its name and how to build it for one
// compiled policy. build may return a nil stage when the policy leaves the
// stage out (inspection without rules); the stage then costs nothing.
type stageSpec struct {
	name  string
	build func(g *Gateway, cfg *config) (stage, error)
}

// stageRegistry is the one place the request path is put together, in the
// order the stages run. Authentication comes first so that an
// unauthenticated client cannot make the gateway read and parse a body;
// the rate gate comes before inspection and counting so that a principal
// over its request rate costs neither.
var stageRegistry = []stageSpec{
	{"requestid", newRequestIDStage},
	{"trace", newTraceStage},
	{"hops", newHopsStage},
	{"auth", newAuthStage},
	{"parse", newParseStage},
	{"translate", newTranslateStage},
	{"model", newModelStage},
	{"rategate", newRateGateStage},
	{"inspect", newInspectStage},
	{"count", newCountStage},
	{"tokencount", newTokenCountStage},
	{"limit", newLimitStage},
	{"cache", newCacheStage},
	{"proxy", newProxyStage},
}

// stageScratch holds the per-request scratch of the stages that keep
// some across pooled requests (each field's type is declared in its
// stage's file and cleared by its reset method). It is the one place
// outside a stage's file that a stage with scratch adds to.
type stageScratch struct {
	inspect inspectScratch
	count   countScratch
	cache   cacheScratch
}

func (s *stageScratch) reset() {
	s.inspect.reset()
	s.count.reset()
	s.cache.reset()
}

// buildChain builds cfg's stages from the registry.
func (g *Gateway) buildChain(cfg *config) error {
	for _, spec := range stageRegistry {
		s, err := spec.build(g, cfg)
		if err != nil {
			return fmt.Errorf("gateway stage %s: %w", spec.name, err)
		}
		if s == nil {
			continue
		}
		cfg.chain = append(cfg.chain, s)
		cfg.chainNames = append(cfg.chainNames, spec.name)
		if f, ok := s.(stageFinisher); ok {
			cfg.finishers = append(cfg.finishers, f)
		}
	}
	return nil
}
