package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/infergate/infergate/l7/ledger"
	"github.com/infergate/infergate/l7/openai"
)

// Bounds on a feedback request.
const (
	maxFeedbackBody = 16 << 10
	feedbackTimeout = 5 * time.Second
)

// FeedbackStore keeps feedback joined to the request it scores
// (l7/ledger); ledger.ErrNoRequest when the tenant has no such request.
type FeedbackStore interface {
	Feedback(context.Context, ledger.Feedback) error
}

type feedbackBody struct {
	RequestID string   `json:"request_id"`
	Score     *float64 `json:"score"`
	Label     string   `json:"label"`
	Comment   string   `json:"comment"`
}

// feedback serves POST /v1/feedback: an authenticated client scores one
// of its own tenant's requests. Another tenant's request id is answered
// 404 exactly as an unknown one, so ids do not leak across tenants. The
// comment is stored, never logged.
func (g *Gateway) feedback(w http.ResponseWriter, r *http.Request) {
	cfg := g.cfg.Load()
	p, err := cfg.auth.Authenticate(r)
	if err != nil {
		authError(err).Write(w)
		return
	}
	if g.opts.Feedback == nil {
		(&openai.Error{Status: http.StatusNotImplemented, Type: openai.TypeServer, Code: "feedback_unavailable",
			Message: "feedback needs the usage ledger's database (gateway.ledger.postgres)"}).Write(w)
		return
	}
	bad := func(msg string) {
		(&openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "invalid_feedback", Message: msg}).Write(w)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxFeedbackBody+1))
	if err != nil {
		bad("the body could not be read")
		return
	}
	if len(raw) > maxFeedbackBody {
		bad("the body is larger than 16 KiB")
		return
	}
	var b feedbackBody
	if err := json.Unmarshal(raw, &b); err != nil {
		bad("the body is not a JSON feedback object")
		return
	}
	if b.Score == nil {
		bad("score is required")
		return
	}
	f := ledger.Feedback{Tenant: p.Tenant, RequestID: b.RequestID, Score: *b.Score, Label: b.Label, Comment: b.Comment}
	if err := f.Check(); err != nil {
		bad(err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), feedbackTimeout)
	defer cancel()
	switch err := g.opts.Feedback.Feedback(ctx, f); {
	case errors.Is(err, ledger.ErrNoRequest):
		(&openai.Error{Status: http.StatusNotFound, Type: openai.TypeInvalidRequest, Code: "request_not_found",
			Message: "no request with that id in the ledger (it may take a second to arrive)"}).Write(w)
	case errors.Is(err, ledger.ErrNoDatabase):
		(&openai.Error{Status: http.StatusNotImplemented, Type: openai.TypeServer, Code: "feedback_unavailable",
			Message: "feedback needs the usage ledger's database (gateway.ledger.postgres)"}).Write(w)
	case err != nil:
		g.log.Warn("feedback not stored", "tenant", p.Tenant, "err", err)
		(&openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeServer, Code: "feedback_unavailable",
			Message: "the ledger database is unavailable"}).Write(w)
	default:
		w.Header().Set("Content-Type", "application/json")
		out, _ := json.Marshal(map[string]string{"object": "feedback", "request_id": f.RequestID})
		_, _ = w.Write(out)
	}
}
