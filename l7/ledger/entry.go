package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/infergate/infergate/l7/audit"
)

// Entry is one finished request as the ledger keeps it: no prompt text, no
// subject, only what billing needs.
type Entry struct {
	// EntryID is the ledger's own id for the entry (see the package doc).
	EntryID          string    `json:"entry_id"`
	RequestID        string    `json:"request_id"`
	Time             time.Time `json:"time"`
	Tenant           string    `json:"tenant"`
	Key              string    `json:"key"`
	Model            string    `json:"model"`
	Endpoint         string    `json:"endpoint"`
	Status           int       `json:"status"`
	Stream           bool      `json:"stream"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	CachedTokens     int64     `json:"cached_tokens"`
	CostUSD          float64   `json:"cost_usd"`
	// Node names the gateway that served the request.
	Node string `json:"node,omitempty"`
}

// FromAudit takes the ledger's fields of an audit record.
func FromAudit(r *audit.Record) Entry {
	return Entry{RequestID: r.ID, Time: r.Time, Tenant: r.Tenant, Key: r.Key, Model: r.Model, Endpoint: r.Endpoint,
		Status: r.Status, Stream: r.Stream, PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens,
		CachedTokens: r.CachedTokens, CostUSD: r.CostUSD}
}

func newEntryID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("entry id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (e *Entry) marshal() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode ledger entry: %w", err)
	}
	return b, nil
}

func unmarshalEntry(b []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode ledger entry: %w", err)
	}
	return e, nil
}
