package gateway

import (
	"slices"
	"testing"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/test/mockllm"
)

// tagStage is a stage added by a test: it answers with a field that
// shows it ran, after the stages before it and before the proxy.
type tagStage struct{ value string }

func (s tagStage) serve(x *exchange) *openai.Error {
	if x.model == nil {
		return &openai.Error{Status: 500, Type: openai.TypeServer, Code: "order", Message: "ran before the model stage"}
	}
	x.setHeader("X-Test-Stage", s.value)
	return nil
}

// TestRegistryAddsStage: one line in the registry puts a stage on the
// request path, in order, built from the applied policy.
func TestRegistryAddsStage(t *testing.T) {
	saved := stageRegistry
	t.Cleanup(func() { stageRegistry = saved })
	at := slices.IndexFunc(stageRegistry, func(s stageSpec) bool { return s.name == "proxy" })
	stageRegistry = slices.Insert(slices.Clone(saved), at, stageSpec{"tag", func(_ *Gateway, cfg *config) (stage, error) {
		return tagStage{value: cfg.c.Name}, nil
	}})
	m := newMock(t, mockllm.Config{})
	h := newHarness(t, basePolicy(pool("p", m)), Options{})
	status, hdr, body := h.call(testKey, "/v1/chat/completions", chatBody("hi", ""))
	if status != 200 || hdr.Get("X-Test-Stage") != "test" {
		t.Fatalf("%d %v %s", status, hdr, body)
	}
	// No inspection rules: the inspect stage is left out.
	want := []string{"requestid", "hops", "auth", "parse", "translate", "model", "rategate", "count", "tokencount", "limit", "tag", "proxy"}
	if names := h.g.cfg.Load().chainNames; !slices.Equal(names, want) {
		t.Fatalf("chain %v, want %v", names, want)
	}
}
