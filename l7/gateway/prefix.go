package gateway

import (
	"sync"

	"github.com/infergate/infergate/l7/openai"
	"github.com/infergate/infergate/l7/route"
)

// maxAffinityPromptBytes bounds the prompt text handed to a prefix-aware
// picker: l7/affinity hashes at most 4096 blocks of 64 bytes, so more
// would be copied for nothing.
const maxAffinityPromptBytes = 256 << 10

var promptBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// pickBackend chooses the backend for one attempt along rt. A prefix-aware
// picker gets the prompt's text in order (system prompt, earlier turns,
// then the new turn), so requests continuing a conversation or sharing a
// system prompt can go where that prefix's KV cache is, and requests for a
// LoRA adapter where that adapter is in use (route.ModelPicker).
//
// It also notes the fraction of the prompt the chosen backend holds, as
// far as the picker knows (route.HitPicker), so that only the rest counts
// as that backend's prefill to come (pending.go).
func (x *exchange) pickBackend(rt *route.Route) *route.Backend {
	t := x.cfg.routes
	x.pickHit = 0
	if rt.Pool == nil || !t.WantsPrompt() {
		return t.Backend(rt)
	}
	bp := promptBufs.Get().(*[]byte)
	p := appendPrompt((*bp)[:0], &x.req)
	model := rt.UpstreamModel // the name the upstream is asked for
	if model == "" {
		model = x.req.Model
	}
	b, hit := t.BackendModel(rt, model, p)
	x.pickHit = hit
	*bp = p[:0]
	promptBufs.Put(bp)
	return b
}

// appendPrompt appends req's prompt text to dst, each chat message led by
// its role so that identical text in different roles hashes differently,
// and stops at maxAffinityPromptBytes.
func appendPrompt(dst []byte, req *openai.Request) []byte {
	lastMsg := -1
	for _, tx := range req.Texts {
		if len(dst) >= maxAffinityPromptBytes {
			break
		}
		if tx.Message >= 0 && tx.Message != lastMsg && tx.Message < len(req.Messages) {
			lastMsg = tx.Message
			dst = append(dst, 0x1e) // record separator: cannot be confused with text
			dst = append(dst, req.Messages[tx.Message].Role...)
			dst = append(dst, 0x1f)
		}
		v := tx.Value
		if rem := maxAffinityPromptBytes - len(dst); len(v) > rem {
			v = v[:max(rem, 0)]
		}
		dst = append(dst, v...)
	}
	// A role may have pushed past the bound by a few bytes.
	return dst[:min(len(dst), maxAffinityPromptBytes)]
}
