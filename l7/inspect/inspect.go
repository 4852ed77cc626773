// Package inspect checks prompts before they are forwarded: PII, secrets,
// prompt injection, invisible-Unicode smuggling, custom deny lists and
// regular expressions, and message size. Each policy rule pairs one
// detector with one action: block the request, redact the match, or flag it
// for metrics and the audit log.
//
// All rules are compiled into one scanner, so a text is read once: a single
// pass drives an Aho-Corasick automaton over the keywords of every detector
// (injection phrases, token prefixes, deny-list words) and a byte-class
// table that triggers the hand-written validators (e-mail at '@', numbers at
// the start of a digit run, IBANs at their first digit, IPv6 at ':',
// invisible characters at their UTF-8 lead bytes). Custom regular
// expressions are joined into one RE2 alternation and run as one more pass.
//
// A Verdict names rules and detectors and counts matches; it never holds
// the matched text.
package inspect

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/infergate/infergate/policy"
)

// Action is what a rule does with a match.
type Action uint8

// Actions, in increasing severity.
const (
	Flag Action = iota + 1
	Redact
	Block
)

func (a Action) String() string {
	switch a {
	case Flag:
		return "flag"
	case Redact:
		return "redact"
	case Block:
		return "block"
	}
	return "unknown"
}

// Detector names, as written in policy.InspectionRule.Detector.
const (
	DetEmail      = "email"
	DetPhone      = "phone"
	DetCard       = "credit-card"
	DetIBAN       = "iban"
	DetSSN        = "us-ssn"
	DetIP         = "ip-address"
	DetCloudKey   = "cloud-key"
	DetPrivateKey = "private-key"
	DetAPIToken   = "api-token"
	DetInjection  = "injection"
	DetSmuggling  = "unicode-smuggling"
	DetRegex      = "regex"
	DetDenyList   = "deny-list"
	// DetSize is the detector of the built-in message size rule.
	DetSize = "size"
)

// SizeRule is the rule name (and block reason) for a message longer than
// policy.Inspection.MaxMessageBytes.
const SizeRule = "max-message-bytes"

// Bounds on configuration, so a policy cannot make compilation or scanning
// unbounded.
const (
	maxRules       = 256
	maxDenyWords   = 10000
	maxDenyWordLen = 256
	// maxDenyBytes bounds all deny words together, and with them the
	// keyword automaton (at most this many states).
	maxDenyBytes    = 32 << 10
	maxPatternBytes = 4096
)

type detector uint8

const (
	dEmail detector = iota
	dPhone
	dCard
	dIBAN
	dSSN
	dIP
	dCloudKey
	dPrivateKey
	dAPIToken
	dInjection
	dSmuggling
	dRegex
	dDenyList
	numDetectors
)

var detectorNames = [numDetectors]string{
	DetEmail, DetPhone, DetCard, DetIBAN, DetSSN, DetIP, DetCloudKey,
	DetPrivateKey, DetAPIToken, DetInjection, DetSmuggling, DetRegex, DetDenyList,
}

func parseDetector(s string) (detector, bool) {
	for i, n := range detectorNames {
		if n == s {
			return detector(i), true
		}
	}
	return 0, false
}

func parseAction(s string) (Action, bool) {
	switch s {
	case "flag":
		return Flag, true
	case "redact":
		return Redact, true
	case "block":
		return Block, true
	}
	return 0, false
}

// Finding is one rule that matched, and how often, over all texts of one
// Inspect call.
type Finding struct {
	Rule     string
	Detector string
	Action   Action
	Count    int
}

// Verdict is the outcome of inspecting a request.
type Verdict struct {
	// Findings in rule order, the size rule first; nil when nothing matched.
	Findings []Finding
	// Blocked is set when a block rule matched; Reason is that rule's name
	// (the first such rule in policy order), the reason code of the 400.
	Blocked bool
	Reason  string
}

type rule struct {
	name   string
	det    detector
	action Action
}

// Inspector is a compiled rule set. It is safe for concurrent use.
type Inspector struct {
	rules    []rule
	maxBytes int
	// byDet lists the rules of each built-in detector.
	byDet [numDetectors][]int
	// redacts is set when some rule redacts.
	redacts bool
	sc      *scanner
	// customs are the regex rules and the non-ASCII words of deny lists.
	customs []customRE
	scratch sync.Pool
}

// New compiles an inspection policy. The error names the offending rule.
func New(cfg policy.Inspection) (*Inspector, error) {
	if len(cfg.Rules) > maxRules {
		return nil, fmt.Errorf("inspect: %d rules, at most %d", len(cfg.Rules), maxRules)
	}
	if cfg.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("inspect: maxMessageBytes %d is negative", cfg.MaxMessageBytes)
	}
	in := &Inspector{maxBytes: cfg.MaxMessageBytes}
	seen := map[string]bool{SizeRule: true}
	var denyASCII []denyWord
	denyBytes := 0
	for i, r := range cfg.Rules {
		if r.Name == "" {
			return nil, fmt.Errorf("inspect: rule %d: empty name", i)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("inspect: rule %q: duplicate or reserved name", r.Name)
		}
		seen[r.Name] = true
		det, ok := parseDetector(r.Detector)
		if !ok {
			return nil, fmt.Errorf("inspect: rule %q: unknown detector %q", r.Name, r.Detector)
		}
		act, ok := parseAction(r.Action)
		if !ok {
			return nil, fmt.Errorf("inspect: rule %q: action %q, want block, redact or flag", r.Name, r.Action)
		}
		idx := len(in.rules)
		in.rules = append(in.rules, rule{name: r.Name, det: det, action: act})
		if act == Redact {
			in.redacts = true
		}
		switch det {
		case dRegex:
			if r.Pattern == "" || len(r.Pattern) > maxPatternBytes {
				return nil, fmt.Errorf("inspect: rule %q: pattern must have 1 to %d bytes", r.Name, maxPatternBytes)
			}
			c, err := newCustom(r.Pattern, idx)
			if err != nil {
				return nil, fmt.Errorf("inspect: rule %q: %w", r.Name, err)
			}
			in.customs = append(in.customs, c)
		case dDenyList:
			if len(r.Words) == 0 || len(r.Words) > maxDenyWords {
				return nil, fmt.Errorf("inspect: rule %q: deny-list needs 1 to %d words", r.Name, maxDenyWords)
			}
			var nonASCII []string
			for _, w := range r.Words {
				w = strings.TrimSpace(w)
				if w == "" || len(w) > maxDenyWordLen {
					return nil, fmt.Errorf("inspect: rule %q: deny-list word must have 1 to %d bytes", r.Name, maxDenyWordLen)
				}
				if denyBytes += len(w); denyBytes > maxDenyBytes {
					return nil, fmt.Errorf("inspect: rule %q: deny lists exceed %d bytes in all", r.Name, maxDenyBytes)
				}
				if isASCII(w) {
					denyASCII = append(denyASCII, denyWord{word: strings.ToLower(w), rule: idx})
				} else {
					nonASCII = append(nonASCII, regexp.QuoteMeta(w))
				}
			}
			if len(nonASCII) > 0 {
				// Case folding beyond ASCII is left to RE2's (?i).
				c, err := newCustom(`(?i:`+strings.Join(nonASCII, "|")+`)`, idx)
				if err != nil {
					return nil, fmt.Errorf("inspect: rule %q: %w", r.Name, err)
				}
				in.customs = append(in.customs, c)
			}
		default:
			if r.Pattern != "" || len(r.Words) > 0 {
				return nil, fmt.Errorf("inspect: rule %q: pattern and words only apply to regex and deny-list", r.Name)
			}
			in.byDet[det] = append(in.byDet[det], idx)
		}
	}
	in.sc = newScanner(in, denyASCII)
	in.scratch.New = func() any { return in.newScratch() }
	// A redact rule that matches a redaction marker would redact its own
	// output again on every pass.
	markers := "[REDACTED:" + strings.Join(detectorNames[:], "] [REDACTED:") + "]"
	s := in.newScratch()
	s.redactOnly = true
	in.scan(markers, s)
	if len(s.spans) > 0 {
		return nil, fmt.Errorf("inspect: rule %q matches the redaction marker", in.rules[s.spans[0].rule].name)
	}
	return in, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// span is one match of one rule in one text.
type span struct {
	start, end int
	rule       int
}

type scratch struct {
	counts []int
	spans  []span
	sized  int // texts over the size limit
	// gated[k] is set when custom expression k's required literal was
	// seen in the current text.
	gated []bool
	// redactOnly records only redact rules (re-scans after redaction).
	redactOnly bool
	// keyTo is the end of the last private key found in the current text.
	keyTo int
	// injChecks counts injection expressions run on the current text;
	// injDone is set once its budget is spent.
	injChecks int
	injDone   bool
	// streams are the streams of a split scan (scanSplit).
	streams streamState
}

func (in *Inspector) newScratch() *scratch {
	return &scratch{counts: make([]int, len(in.rules)), gated: make([]bool, len(in.customs))}
}

// Inspect checks every text of a request (message contents) and returns
// the verdict and, when a redact rule matched and nothing blocked, the
// rewritten texts; otherwise the texts are returned as given.
func (in *Inspector) Inspect(texts []string) (Verdict, []string) {
	s := in.scratch.Get().(*scratch)
	defer in.release(s)
	var out []string
	for ti, t := range texts {
		if in.maxBytes > 0 && len(t) > in.maxBytes {
			// Too long to forward at all: no need to read it.
			s.sized++
			continue
		}
		s.spans = s.spans[:0]
		in.scan(t, s)
		if len(s.spans) == 0 || !in.redacts {
			continue
		}
		if r, changed := in.redactText(t, s); changed {
			if out == nil {
				out = make([]string, len(texts))
				copy(out, texts)
			}
			out[ti] = r
		}
	}
	v := in.verdict(s)
	if v.Blocked || out == nil {
		return v, texts
	}
	return v, out
}

// maxRedactPasses bounds the re-scans of a redacted text. A redaction can
// expose a value that was hidden by its neighbour ("+15551234567+15557654321":
// the second number only starts a phone number once the first is gone), so
// the text is scanned again until no redact rule matches.
const maxRedactPasses = 4

// redactText rewrites t after a scan that left its spans in s, then re-scans
// for redact rules only, counting what the later passes find.
func (in *Inspector) redactText(t string, s *scratch) (string, bool) {
	r, changed := in.rewrite(t, s.spans)
	if !changed {
		return t, false
	}
	s.redactOnly = true
	defer func() { s.redactOnly = false }()
	for pass := 1; pass < maxRedactPasses; pass++ {
		s.spans = s.spans[:0]
		in.scan(r, s)
		next, again := in.rewrite(r, s.spans)
		if !again {
			break
		}
		r = next
	}
	return r, true
}

// Scan inspects one text without rewriting it.
func (in *Inspector) Scan(text string) Verdict {
	s := in.scratch.Get().(*scratch)
	defer in.release(s)
	if in.maxBytes > 0 && len(text) > in.maxBytes {
		s.sized++
	} else {
		in.scan(text, s)
	}
	return in.verdict(s)
}

// Redact inspects one text and returns it with every redact rule's matches
// replaced by "[REDACTED:<detector>]" (invisible characters are removed).
func (in *Inspector) Redact(text string) (string, Verdict) {
	v, out := in.Inspect([]string{text})
	return out[0], v
}

func (in *Inspector) release(s *scratch) {
	clear(s.counts)
	s.sized = 0
	if cap(s.spans) > 1024 {
		s.spans = nil // don't keep a huge slice alive in the pool
	}
	s.spans = s.spans[:0]
	in.scratch.Put(s)
}

func (in *Inspector) verdict(s *scratch) Verdict {
	var v Verdict
	if s.sized > 0 {
		v.Findings = append(v.Findings, Finding{Rule: SizeRule, Detector: DetSize, Action: Block, Count: s.sized})
		v.Blocked, v.Reason = true, SizeRule
	}
	for i, n := range s.counts {
		if n == 0 {
			continue
		}
		r := &in.rules[i]
		v.Findings = append(v.Findings, Finding{Rule: r.name, Detector: detectorNames[r.det], Action: r.action, Count: n})
		if r.action == Block && !v.Blocked {
			v.Blocked, v.Reason = true, r.name
		}
	}
	return v
}
