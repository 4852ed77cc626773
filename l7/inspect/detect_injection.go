package inspect

import (
	"regexp"
	"strings"
)

// Prompt injection: phrases that try to replace the system prompt, unlock
// a "mode", fake a chat template's role markers or leak the prompt.
//
// The vocabulary is kept once, in injectionPhrases. From it come both the
// keywords the scanner's automaton looks for (each with the words that may
// follow it, so that "enter the room" is dismissed without running the
// expression) and injectionRE, the expression run at a keyword hit.

// Word lists shared by several phrases.
var (
	injDismissVerbs = []string{"ignore", "disregard", "forget", "override", "bypass", "neglect", "discard", "abandon"}
	injQuantifiers  = []string{"all", "any", "every", "each", "the", "of", "these", "those", "my", "your", "its"}
	injEarlier      = []string{"previous", "prior", "above", "earlier", "preceding", "foregoing", "former", "initial",
		"original", "old", "system", "existing", "developer", "safety", "given"}
	injRestricted = []string{"unrestricted", "unfiltered", "uncensored", "jailbroken"}
	injModes      = []string{"developer", "god", "jailbreak", "dan", "unrestricted"}
	injLeakAdj    = []string{"full", "entire", "original", "hidden", "initial", "secret"}
)

// injectionPhrase is one alternative of injectionRE: one of keywords (each
// lower case, a space standing for any run of white space) followed by
// rest. first lists the words that may come right after the keyword
// (nil: anything may).
type injectionPhrase struct {
	keywords []string
	first    []string
	rest     string
}

// injectionPhrases in the order injectionRE tries them (the first
// alternative that matches at a hit sets the span).
var injectionPhrases = []injectionPhrase{
	// "ignore all previous instructions" and its many spellings.
	{injDismissVerbs, cat(injQuantifiers, injEarlier),
		`\s+(?:` + alt(injQuantifiers) + `\s+){0,3}` + alt(injEarlier) + `(?:\s+(?:and|or|&)\s+\w+)?\s+(?:\w+\s+)?(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|commands?|orders|context|messages?|constraints?|programming|guardrails?|restrictions?|polic(?:y|ies)|conversation|text|input|content|training)`},
	// "disregard your rules"
	{injDismissVerbs, []string{"all", "any", "of", "your"},
		`\s+(?:(?:all|any|of)\s+){0,2}your\s+(?:\w+\s+){0,2}?(?:instructions|rules|guidelines|programming|training|restrictions|filters|guardrails|safety|policies|constraints|principles|system\s+prompt)`},
	// "forget everything above"
	{injDismissVerbs[:3], []string{"everything", "anything", "all", "what"},
		`\s+(?:everything|anything|all|what)\s+(?:(?:that\s+)?(?:was\s+)?(?:said\s+|written\s+|stated\s+)?)?(?:above|before|previously|prior|earlier|you\s+(?:were|have\s+been)\s+told)`},
	// Role override.
	{[]string{"you are now", "you're now"}, []string{"dan", "a", "an", "in", "free", "no"},
		`\s+(?:dan\b|an?\s+(?:` + strings.Join(injRestricted, "|") + `|evil|rogue|unbound)|in\s+` + alt(injModes) + `\s+mode|free\s+(?:from|of)\s|no\s+longer\s+(?:bound|restricted|limited|an?\s+ai|chatgpt|an?\s+assistant))`},
	{[]string{"act as", "behave as", "respond as"}, cat([]string{"if", "a", "an", "dan", "ai"}, injRestricted),
		`\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:` + strings.Join(injRestricted, "|") + `|dan\b|ai\s+without\s+(?:restrictions|rules|limits))`},
	{[]string{"pretend"}, []string{"that", "you", "dan", "no", "without", "a", "an"},
		`\s+(?:that\s+)?(?:you\s+(?:are|have|were)\s+)?(?:dan\b|(?:no|without)\s+(?:restrictions|rules|limits|guidelines|filters)|an?\s+(?:unrestricted|unfiltered|jailbroken))`},
	{[]string{"do anything now"}, nil, ``},
	{[]string{"enable ", "activate ", "enter ", "switch to "}, injModes, alt(injModes) + `\s+mode`},
	{[]string{"developer mode", "god mode", "dan mode"}, []string{"enabled", "activated", "on"}, `\s+(?:enabled|activated|on)`},
	{[]string{"jailbreak"}, nil, `\s+mode\s+(?:enabled|activated|on)`},
	{[]string{"jailbreak"}, nil, `(?:ed)?\s+(?:mode|prompt)`},
	// Fake chat-template and role markers.
	{[]string{"<|im_start|>"}, nil, `\s*(?:system|assistant)`},
	{[]string{"<|system|>"}, nil, ``},
	{[]string{"<<sys>>"}, nil, ``},
	{[]string{"[system]", "[inst]"}, nil, ``},
	{[]string{"### system"}, nil, `\b`},
	{[]string{"system:"}, nil, ``},
	// Prompt leaking.
	{[]string{"reveal", "repeat", "leak"}, []string{"me", "your", "the"},
		`\s+(?:me\s+)?(?:your|the)\s+` + injLeakTail},
	{[]string{"print your", "show me your", "show your", "output your"}, cat(injLeakAdj, []string{"system", "instructions"}),
		`\s+` + injLeakTail},
	{[]string{"new instructions", "updated instructions", "real instructions"}, nil, `\s*:`},
}

// injLeakTail is what a prompt-leaking phrase asks for.
const injLeakTail = `(?:full\s+|entire\s+|original\s+|hidden\s+|initial\s+|secret\s+)?(?:system\s+prompt|initial\s+prompt|hidden\s+prompt|instructions\s+above|system\s+instructions)`

func alt(words []string) string { return `(?:` + strings.Join(words, "|") + `)` }

func cat(a, b []string) []string { return append(append([]string(nil), a...), b...) }

// keywordRE is a keyword as an expression: its text, any run of white
// space where it has a space.
func keywordRE(k string) string {
	parts := strings.Split(k, " ")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return strings.Join(parts, `\s+`)
}

var injectionRE = func() *regexp.Regexp {
	alts := make([]string, len(injectionPhrases))
	for i, p := range injectionPhrases {
		ks := make([]string, len(p.keywords))
		for j, k := range p.keywords {
			ks[j] = keywordRE(k)
		}
		alts[i] = `(?:` + strings.Join(ks, "|") + `)` + p.rest
	}
	return regexp.MustCompile(`^(?i:` + strings.Join(alts, "|") + `)`)
}()

// injectionKeyword is one keyword the scanner looks for, with the words
// that may follow it in any of its phrases (nil: any word may).
type injectionKeyword struct {
	text string
	next map[string]bool
}

// injectionKeywords are the phrases' keywords, each once; the scanner's
// keyword rule is the index here.
var injectionKeywords = func() []injectionKeyword {
	var out []injectionKeyword
	at := map[string]int{}
	for _, p := range injectionPhrases {
		for _, k := range p.keywords {
			i, ok := at[k]
			if !ok {
				i = len(out)
				at[k] = i
				out = append(out, injectionKeyword{text: k, next: map[string]bool{}})
			}
			kw := &out[i]
			if p.first == nil || kw.next == nil {
				kw.next = nil
				continue
			}
			for _, w := range p.first {
				kw.next[w] = true
			}
		}
	}
	return out
}()

// maxNextWord is the longest word looked up in a keyword's next-word set.
const maxNextWord = 16

// nextWordAllowed reports whether the word after the keyword at
// text[start:end] may continue a phrase of keyword k.
func nextWordAllowed(text string, end, k int) bool {
	next := injectionKeywords[k].next
	if next == nil {
		return true
	}
	for end < len(text) && (text[end] == ' ' || text[end] == '\t' || text[end] == '\n' || text[end] == '\r') {
		end++
	}
	var buf [maxNextWord]byte
	n := 0
	for end < len(text) && isAlpha(text[end]) {
		if n == maxNextWord {
			return false
		}
		buf[n] = lower[text[end]]
		n++
		end++
	}
	return next[string(buf[:n])]
}

// matchInjection checks the injection phrases at a keyword hit.
//
// A keyword glued to a preceding word still counts ("xIgnore previous
// instructions"): it is what an attacker would write, and it keeps the
// match from depending on a character a redaction may replace.
func matchInjection(text string, start int) (int, bool) {
	window := text[start:min(len(text), start+maxInjectionSpan)]
	if len(window) >= 7 && strings.EqualFold(window[:6], "system") {
		// "system:" is a role marker only at the start of a line.
		k := start
		for k > 0 && (text[k-1] == ' ' || text[k-1] == '\t') {
			k--
		}
		if k > 0 && text[k-1] != '\n' {
			return 0, false
		}
	}
	loc := injectionRE.FindStringIndex(window)
	if loc == nil {
		return 0, false
	}
	return start + loc[1], true
}
