package gateway

import (
	"net/http"
	"strconv"

	"github.com/infergate/infergate/l7/inspect"
	"github.com/infergate/infergate/l7/openai"
)

// inspectStage scans the prompt texts with the policy's inspection rules:
// a block rule ends the request, redact rules rewrite what goes upstream,
// every match is counted and audited. Policies without rules leave the
// stage out.
//
// Reads: x.req.Texts. Writes: x.inspected, x.rewrite.Texts and (redacted)
// x.req.Texts.
type inspectStage struct {
	inspector Inspector
	// maxMessage is the policy's per-text size limit (0: none), named in
	// the answer to a text over it.
	maxMessage int
}

// inspectScratch is the inspector's input, kept across pooled requests.
type inspectScratch struct{ texts []string }

func (s *inspectScratch) reset() {
	clear(s.texts)
	s.texts = s.texts[:0]
}

func newInspectStage(g *Gateway, cfg *config) (stage, error) {
	ins := cfg.c.Gateway.Inspection
	if len(ins.Rules) == 0 && ins.MaxMessageBytes <= 0 {
		return nil, nil
	}
	in, err := g.opts.NewInspector(ins)
	if err != nil {
		return nil, err
	}
	return &inspectStage{inspector: in, maxMessage: ins.MaxMessageBytes}, nil
}

func (s *inspectStage) serve(x *exchange) *openai.Error {
	if len(x.req.Texts) == 0 {
		return nil
	}
	sc := &x.scratch.inspect
	texts := sc.texts[:0]
	for i := range x.req.Texts {
		texts = append(texts, x.req.Texts[i].Value)
	}
	sc.texts = texts
	res, err := s.inspector.Inspect(texts)
	if err != nil {
		return &openai.Error{Status: http.StatusInternalServerError, Type: openai.TypeServer, Code: "inspection_failed", Message: "prompt inspection failed"}
	}
	x.inspected = res
	for _, m := range res.Matches {
		x.g.metrics.verdicts.WithLabelValues(x.principal.Tenant, m.Rule, m.Action).Inc()
	}
	if res.Block != nil && res.Block.Rule == inspect.SizeRule && s.maxMessage > 0 {
		return &openai.Error{Status: http.StatusRequestEntityTooLarge, Type: openai.TypeInvalidRequest, Code: "message_too_large",
			Message: "a message is longer than " + strconv.Itoa(s.maxMessage) + " bytes (gateway.inspection.maxMessageBytes)"}
	}
	if res.Block != nil {
		return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "content_blocked",
			Message: "the prompt was blocked by policy rule " + res.Block.Rule, Param: res.Block.Rule}
	}
	if res.Redacted != nil && len(res.Redacted) == len(texts) {
		x.rewrite.Texts = res.Redacted
		for i := range x.req.Texts {
			x.req.Texts[i].Value = res.Redacted[i]
		}
	}
	return nil
}
