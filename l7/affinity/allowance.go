package affinity

import "math"

// DefaultGain is Config.Gain's default: a backend holding part of a prompt
// may carry, beyond its bounded share, 4 more requests in flight per
// PrefillTokensPerRequest prompt tokens it holds (see Allowed).
//
// Why a hit is worth more than the prefill it saves this one request: the
// request sent away from the holder also fills another cache with a copy
// that evicts what that one held, and an engine that batches continuously
// serves a few more requests in flight at little cost. On llm-d's
// benchmark shape (a 6,000-token shared prompt before a 1,200-token
// question) a miss costs six times the prefill of a hit, and the plain
// bound of 1.25 shares moved requests off the holder at every burst: p90
// TTFT 241 ms against 76 ms for llm-d's precise scorer in test/sched.
const DefaultGain = 4.0

// PrefillTokensPerRequest is the exchange rate between prompt tokens to
// prefill and requests in flight that the pickers' load figure uses
// (l7/pick counts a backend's pending prompt tokens at this rate beside
// its in-flight count): a hit on n tokens saves the request about
// n/PrefillTokensPerRequest requests' worth of waiting.
const PrefillTokensPerRequest = 1024

// Allowed reports whether a backend with load requests in flight and
// weight w may take one more, where the candidates' loads and weights total
// totalL and totalW and the backend holds savedTokens of the prompt's
// tokens in its cache (0: none).
//
// Every backend may load up to bound times its weighted share of the
// in-flight requests, this one included (the bounded-loads rule of
// Mirrokni et al.; some backend always passes it). A backend holding part
// of the prompt may go further by a credit of gain*savedTokens/
// PrefillTokensPerRequest requests: its in-flight count less the credit,
// per unit of weight, must stay within bound times the other backends'
// (one more counted). The comparison is with the others, not with a share
// that includes the holder's own load: with two backends that share would
// grow as fast as the holder's load and never stop a hot prefix.
//
// The credit is a number of requests, the prefill the hit saves, not a
// factor on the others' load: a factor let a holder carry several times
// the others' queue for any prompt it held whole, however short, so a
// holder that slowed down (a throttled GPU) kept its short prompts while
// its queue grew, which in the live lab cost the KV-event path a p99 TTFT
// of 813 ms against static weights' 186 (a 370-token system prompt whose
// hit saves 2% of the request's time held a backend slowed to 0.3x). A
// credit in requests stops a slow holder once its queue outgrows what the
// hit saves, and still keeps a 6,000-token prompt on its holder through a
// burst (23 requests of credit).
func Allowed(load, w, totalL, totalW, bound, gain, savedTokens float64) bool {
	load = max(load, 0)
	if load+1 <= math.Ceil(bound*(totalL+1)*w/totalW) {
		return true
	}
	credit := gain * max(savedTokens, 0) / PrefillTokensPerRequest
	if !(credit > 0) || math.IsInf(credit, 0) {
		return false
	}
	otherL, otherW := max(totalL-load, 0), totalW-w
	if !(otherW > 0) {
		return true // the only backend
	}
	return (load+1-credit)/w <= bound*(otherL+1)/otherW
}

// bytesPerToken is the prompt bytes the approximate index takes for one
// token (English text and JSON run near 4 with common tokenizers), so
// that a DefaultBlockBytes block counts as vLLM's 16-token KV block.
const bytesPerToken = 4

// savedTokens is the prompt tokens a backend holding matched blocks of
// blockTokens tokens would not prefill.
func savedTokens(matched, blockTokens int) float64 {
	if matched <= 0 || blockTokens <= 0 {
		return 0
	}
	return float64(matched) * float64(blockTokens)
}

// Allowed is the package's Allowed under the chooser's bound and gain, for
// a backend holding matched blocks of blockTokens tokens of the prompt:
// the one rule the approximate index (Choose) and the pickers that know
// the engines' own blocks apply.
func (c *Chooser) Allowed(load, w, totalL, totalW float64, matched, blockTokens int) bool {
	return Allowed(load, w, totalL, totalW, c.cfg.Bound, c.cfg.Gain, savedTokens(matched, blockTokens))
}

// Bound is the chooser's load bound (Config.Bound, else DefaultBound).
func (c *Chooser) Bound() float64 { return c.cfg.Bound }
