package inspect

import (
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Detector bounds: how far a validator may look from its trigger.
const (
	maxEmailLocal    = 64
	maxEmailDomain   = 253
	maxIPv6Text      = 45 // longest textual IPv6 address, IPv4 tail included
	maxInjectionSpan = 256
	// A text may run maxInjectionChecksBase injection checks plus one per
	// injectionCheckBytes of its length.
	maxInjectionChecksBase = 64
	injectionCheckBytes    = 64
	maxTokenBody           = 512
	maxPrivateKeyHead      = 64
	minCardDigits          = 13
	maxCardDigits          = 19
	minPhoneDigits         = 8
	maxPhoneDigits         = 15
	minIPv6HexDigits       = 4
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || ((c|0x20) >= 'a' && (c|0x20) <= 'f') }

// isWordByte treats bytes of non-ASCII characters as word bytes, so a deny
// word does not match inside "naïveté".
func isWordByte(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

func isEmailLocal(c byte) bool {
	return isAlnum(c) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

func isDomainByte(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

// matchEmail validates an address around the '@' at i.
func matchEmail(text string, at int) (int, int, bool) {
	a := at
	for a > 0 && isEmailLocal(text[a-1]) && at-a < maxEmailLocal {
		a--
	}
	if a > 0 && isEmailLocal(text[a-1]) {
		return 0, 0, false // local part too long: not an address
	}
	for a < at && text[a] == '.' {
		a++
	}
	if a == at {
		return 0, 0, false
	}
	b := at + 1
	for b < len(text) && isDomainByte(text[b]) && b-at <= maxEmailDomain {
		b++
	}
	if b < len(text) && isDomainByte(text[b]) {
		return 0, 0, false
	}
	// A sentence may end right after the address.
	for b > at+1 && (text[b-1] == '.' || text[b-1] == '-') {
		b--
	}
	domain := text[at+1 : b]
	dot := strings.LastIndexByte(domain, '.')
	if dot <= 0 || strings.Contains(domain, "..") || domain[0] == '.' || domain[0] == '-' {
		return 0, 0, false
	}
	tld := domain[dot+1:]
	if len(tld) < 2 {
		return 0, 0, false
	}
	for i := 0; i < len(tld); i++ {
		if !isAlpha(tld[i]) {
			return 0, 0, false
		}
	}
	return a, b, true
}

// luhn reports whether the digits pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// matchCard finds 13 to 19 digits, solid or grouped by single spaces or
// dashes the way cards are printed (4-4-4-4, 4-4-4-4-3, 4-6-5, 4-6-4), that start
// like a card network's number and pass Luhn. When the digits run on,
// every group boundary from the longest down is tried.
func matchCard(text string, i int) (int, bool) {
	const maxGroups = 6
	var digits [maxCardDigits + 2]byte
	var groups [maxGroups]int // digits per group
	var ends [maxGroups]int   // text end of each group
	n, ng, pos := 0, 0, i
	for pos < len(text) && n <= maxCardDigits && ng < maxGroups {
		c := text[pos]
		if isDigit(c) {
			digits[n] = c - '0'
			n++
			groups[ng]++
			pos++
			if pos == len(text) || !isDigit(text[pos]) {
				ends[ng] = pos
				ng++
			}
			continue
		}
		if (c == ' ' || c == '-') && pos+1 < len(text) && isDigit(text[pos+1]) && pos > i && isDigit(text[pos-1]) {
			pos++
			continue
		}
		break
	}
	total := 0
	for g := 0; g < ng; g++ {
		total += groups[g]
	}
	for g := ng - 1; g >= 0; g-- {
		k, e := total, ends[g]
		total -= groups[g]
		if k < minCardDigits || k > maxCardDigits || (e < len(text) && isAlnum(text[e])) {
			continue
		}
		if g == ng-1 && ng < maxGroups && n <= maxCardDigits && pos < len(text) && isDigit(text[pos]) {
			continue // the number runs on past what was read
		}
		if cardGrouping(groups[:g+1]) && cardPrefix(digits[:k]) && luhn(digits[:k]) {
			return e, true
		}
	}
	return 0, false
}

// cardGrouping accepts a solid number or the printed groupings of cards.
func cardGrouping(g []int) bool {
	switch {
	case len(g) == 1:
		return true
	case len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4):
		return true
	}
	for k, n := range g {
		if n != 4 && !(k == 4 && len(g) == 5 && n == 3) {
			return false
		}
	}
	return true
}

// cardPrefix accepts the leading digits of the major networks: Visa 4,
// Mastercard 2 and 5, Amex/Diners/JCB 3, Discover/UnionPay/Maestro 6.
func cardPrefix(d []byte) bool {
	switch d[0] {
	case 4, 5, 6:
		return true
	case 2:
		v := int(d[0])*1000 + int(d[1])*100 + int(d[2])*10 + int(d[3])
		return v >= 2221 && v <= 2720
	case 3:
		return d[1] != 1 && d[1] != 2 && d[1] != 3
	}
	return false
}

// matchSSN accepts ddd-dd-dddd with the numbers the SSA never issues
// excluded (area 000, 666, 900-999; group 00; serial 0000).
func matchSSN(text string, i int) (int, bool) {
	const l = len("123-45-6789")
	if i+l > len(text) {
		return 0, false
	}
	s := text[i : i+l]
	for k := 0; k < l; k++ {
		if k == 3 || k == 6 {
			if s[k] != '-' {
				return 0, false
			}
		} else if !isDigit(s[k]) {
			return 0, false
		}
	}
	if i+l < len(text) && (isAlnum(text[i+l]) || (text[i+l] == '-' && i+l+1 < len(text) && isDigit(text[i+l+1]))) {
		return 0, false
	}
	area, group, serial := s[0:3], s[4:6], s[7:11]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return 0, false
	}
	return i + l, true
}

// matchIPv4 accepts a dotted quad of octets 0-255 without leading zeros,
// not part of a longer dotted number.
func matchIPv4(text string, i int) (int, bool) {
	pos := i
	for octet := 0; octet < 4; octet++ {
		if octet > 0 {
			if pos >= len(text) || text[pos] != '.' {
				return 0, false
			}
			pos++
		}
		start, v := pos, 0
		for pos < len(text) && isDigit(text[pos]) && pos-start < 3 {
			v = v*10 + int(text[pos]-'0')
			pos++
		}
		n := pos - start
		if n == 0 || v > 255 || (n > 1 && text[start] == '0') {
			return 0, false
		}
	}
	if pos < len(text) && (isAlnum(text[pos]) || (text[pos] == '.' && pos+1 < len(text) && isDigit(text[pos+1]))) {
		return 0, false
	}
	return pos, true
}

// matchPhone accepts international numbers written with a leading '+'
// (8 to 15 digits, single spaces, dots, dashes or parentheses between
// groups) and North American numbers written in groups: (555) 123-4567,
// 555-123-4567, 555.123.4567, 1-555-123-4567. Bare digit strings are left
// alone: order numbers and timestamps look the same.
func matchPhone(text string, i int) (int, bool) {
	if text[i] == '+' {
		pos, n := i+1, 0
		if pos >= len(text) || !isDigit(text[pos]) {
			return 0, false
		}
		end := 0
		for pos < len(text) && n <= maxPhoneDigits {
			c := text[pos]
			switch {
			case isDigit(c):
				n++
				pos++
				end = pos
				continue
			case c == ')' && isDigit(text[pos-1]):
				pos++
				end = pos
				continue
			case (c == ' ' || c == '-' || c == '.' || c == '(') && pos+1 < len(text) && (isDigit(text[pos+1]) || text[pos+1] == '('):
				pos++
				continue
			}
			break
		}
		if n < minPhoneDigits || n > maxPhoneDigits || (end < len(text) && phoneGlued(text[end])) {
			return 0, false
		}
		return end, true
	}
	pos := i
	if text[pos] == '1' && pos+1 < len(text) && (text[pos+1] == '-' || text[pos+1] == ' ' || text[pos+1] == '.') {
		pos += 2
	}
	// Area code: "(ddd) " / "(ddd)" or "ddd" + separator.
	var sep byte
	if pos < len(text) && text[pos] == '(' {
		if !digitsAt(text, pos+1, 3) || pos+4 >= len(text) || text[pos+4] != ')' {
			return 0, false
		}
		pos += 5
		if pos < len(text) && text[pos] == ' ' {
			pos++
		}
		sep = '-'
		if !digitsAt(text, pos, 3) || pos+3 >= len(text) || (text[pos+3] != '-' && text[pos+3] != '.' && text[pos+3] != ' ') {
			return 0, false
		}
		sep = text[pos+3]
		pos += 4
	} else {
		if !digitsAt(text, pos, 3) || pos+3 >= len(text) {
			return 0, false
		}
		sep = text[pos+3]
		if sep != '-' && sep != '.' && sep != ' ' {
			return 0, false
		}
		pos += 4
		if !digitsAt(text, pos, 3) || pos+3 >= len(text) || text[pos+3] != sep {
			return 0, false
		}
		pos += 4
	}
	if !digitsAt(text, pos, 4) {
		return 0, false
	}
	pos += 4
	if pos < len(text) && (phoneGlued(text[pos]) || ((text[pos] == '-' || text[pos] == '.') && pos+1 < len(text) && isDigit(text[pos+1]))) {
		return 0, false
	}
	return pos, true
}

// phoneGlued reports a byte after a number that makes it part of something
// longer. '+' and '(' count too: they could start another number that the
// first one's last digit keeps from matching.
func phoneGlued(c byte) bool { return isAlnum(c) || c == '+' || c == '(' }

func digitsAt(text string, pos, n int) bool {
	if pos+n > len(text) {
		return false
	}
	for k := pos; k < pos+n; k++ {
		if !isDigit(text[k]) {
			return false
		}
	}
	return true
}

// ibanLength is the IBAN length of each country in the SWIFT registry.
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// matchIBAN accepts an IBAN of its country's length, written solid or in
// groups of four, whose check digits pass ISO 7064 mod 97-10.
func matchIBAN(text string, i int) (int, bool) {
	if i+4 > len(text) || !isUpper(text[i+1]) || !isDigit(text[i+2]) || !isDigit(text[i+3]) {
		return 0, false
	}
	want, ok := ibanLength[text[i:i+2]]
	if !ok {
		return 0, false
	}
	var buf [34]byte
	n, pos := 0, i
	for pos < len(text) && n < want {
		c := text[pos]
		if isUpper(c) || isDigit(c) {
			buf[n] = c
			n++
			pos++
			continue
		}
		if c == ' ' && n%4 == 0 && pos+1 < len(text) && (isUpper(text[pos+1]) || isDigit(text[pos+1])) {
			pos++
			continue
		}
		break
	}
	if n != want || (pos < len(text) && isAlnum(text[pos])) {
		return 0, false
	}
	// Move the country code and check digits to the end; letters count
	// as 10..35.
	rem := 0
	for k := 0; k < n; k++ {
		c := buf[(k+4)%n]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	return pos, rem == 1
}

func isIPv6Byte(c byte) bool { return isHex(c) || c == ':' || c == '.' }

// matchIPv6 looks at the text around the ':' at i for an IPv6 address. It
// returns the candidate's span even when it is not an address, so that the
// caller can skip the candidate's other colons.
func matchIPv6(text string, i int) (int, int, bool) {
	a := i
	for a > 0 && isIPv6Byte(text[a-1]) && i-a < maxIPv6Text {
		a--
	}
	b := i + 1
	for b < len(text) && isIPv6Byte(text[b]) && b-i < maxIPv6Text {
		b++
	}
	if (a > 0 && (isAlnum(text[a-1]) || isIPv6Byte(text[a-1]))) || (b < len(text) && (isAlnum(text[b]) || isIPv6Byte(text[b]))) || b-a > maxIPv6Text {
		return a, b, false
	}
	for b > a && text[b-1] == '.' {
		b--
	}
	cand := text[a:b]
	colons, hex := 0, 0
	for k := 0; k < len(cand); k++ {
		switch {
		case cand[k] == ':':
			colons++
		case isHex(cand[k]):
			hex++
		}
	}
	if colons < 2 || hex < minIPv6HexDigits {
		return a, b, false
	}
	addr, err := netip.ParseAddr(cand)
	if err != nil || !addr.Is6() {
		return a, b, false
	}
	return a, b, true
}

// invisibleLeads are the UTF-8 lead bytes of the characters matchInvisible
// looks for.
var invisibleLeads = []byte{0xE1, 0xE2, 0xEF, 0xF3}

// invisibleKind classifies a rune: 0 visible, 1 always suspicious, 2 a
// joiner that is legitimate between non-ASCII characters (emoji sequences,
// Indic and Arabic scripts).
func invisibleKind(r rune) int {
	switch {
	case r >= 0xE0000 && r <= 0xE007F: // tag characters
		return 1
	case r >= 0xE0100 && r <= 0xE01EF: // variation selectors 17-256
		return 1
	case r == 0x200B || r == 0x2060 || r == 0x180E || r == 0xFEFF:
		return 1
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return 1
	case r >= 0x2061 && r <= 0x2064: // invisible operators
		return 1
	case r == 0x200C || r == 0x200D:
		return 2
	}
	return 0
}

// matchInvisible finds a run of invisible characters starting at i.
func matchInvisible(text string, i int) (int, bool) {
	r, size := utf8.DecodeRuneInString(text[i:])
	k := invisibleKind(r)
	if k == 0 || (r == 0xFEFF && i == 0) {
		return 0, false
	}
	end, bad := i+size, k == 1
	for end < len(text) {
		r, size := utf8.DecodeRuneInString(text[end:])
		k := invisibleKind(r)
		if k == 0 {
			break
		}
		bad = true // a run of two or more is never needed
		end += size
	}
	if !bad {
		// A lone joiner: suspicious only next to ASCII or at an edge.
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		after, _ := utf8.DecodeRuneInString(text[end:])
		if i == 0 || end == len(text) || before < 0x80 || after < 0x80 {
			bad = true
		}
	}
	return end, bad
}

// injectionGroups are the keywords that start the phrases of injectionRE,
// each with the words that may follow it in a phrase. A keyword hit whose
// next word is not among them is dismissed without running the expression
// ("enter the room", "ignore this"); a nil list always runs it.
var injectionGroups = []struct {
	keywords []string
	next     map[string]bool
}{
	{[]string{"ignore", "disregard", "forget", "override", "bypass", "neglect", "discard", "abandon"},
		wordSet("all any every each the of these those my your its previous prior above earlier preceding foregoing former initial original old system existing developer safety given everything anything what")},
	{[]string{"you are now", "you're now"}, wordSet("dan a an in free no")},
	{[]string{"act as", "behave as", "respond as"}, wordSet("if a an unrestricted unfiltered uncensored jailbroken dan ai")},
	{[]string{"pretend"}, wordSet("that you dan no without a an")},
	{[]string{"enable ", "activate ", "enter ", "switch to "}, wordSet("developer god jailbreak dan unrestricted")},
	{[]string{"developer mode", "god mode", "dan mode"}, wordSet("enabled activated on")},
	{[]string{"reveal", "repeat", "leak"}, wordSet("me your the")},
	{[]string{"print your", "show me your", "show your", "output your"}, wordSet("full entire original hidden initial secret system instructions")},
	{[]string{"do anything now", "jailbreak", "<|im_start|>", "<|system|>", "<<sys>>", "[system]", "[inst]", "### system",
		"system:", "new instructions", "updated instructions", "real instructions"}, nil},
}

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// maxNextWord is the longest word looked up in a group's next-word set.
const maxNextWord = 16

// nextWordAllowed reports whether the word after the keyword at
// text[start:end] may continue a phrase of group g.
func nextWordAllowed(text string, end, g int) bool {
	next := injectionGroups[g].next
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

var injectionRE = regexp.MustCompile(`^(?i:` + strings.Join([]string{
	// "ignore all previous instructions" and its many spellings.
	`(?:ignore|disregard|forget|override|bypass|neglect|discard|abandon)\s+(?:(?:all|any|every|each|the|of|these|those|my|your|its)\s+){0,3}(?:previous|prior|above|earlier|preceding|foregoing|former|initial|original|old|system|existing|developer|safety|given)(?:\s+(?:and|or|&)\s+\w+)?\s+(?:\w+\s+)?(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|commands?|orders|context|messages?|constraints?|programming|guardrails?|restrictions?|polic(?:y|ies)|conversation|text|input|content|training)`,
	// "disregard your rules"
	`(?:ignore|disregard|forget|override|bypass|neglect|discard|abandon)\s+(?:(?:all|any|of)\s+){0,2}your\s+(?:\w+\s+){0,2}?(?:instructions|rules|guidelines|programming|training|restrictions|filters|guardrails|safety|policies|constraints|principles|system\s+prompt)`,
	// "forget everything above"
	`(?:ignore|disregard|forget)\s+(?:everything|anything|all|what)\s+(?:(?:that\s+)?(?:was\s+)?(?:said\s+|written\s+|stated\s+)?)?(?:above|before|previously|prior|earlier|you\s+(?:were|have\s+been)\s+told)`,
	// Role override.
	`you(?:\s+are|'re)\s+now\s+(?:dan\b|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|unbound)|in\s+(?:developer|god|jailbreak|dan|unrestricted)\s+mode|free\s+(?:from|of)\s|no\s+longer\s+(?:bound|restricted|limited|an?\s+ai|chatgpt|an?\s+assistant))`,
	`(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|dan\b|ai\s+without\s+(?:restrictions|rules|limits))`,
	`pretend\s+(?:that\s+)?(?:you\s+(?:are|have|were)\s+)?(?:dan\b|(?:no|without)\s+(?:restrictions|rules|limits|guidelines|filters)|an?\s+(?:unrestricted|unfiltered|jailbroken))`,
	`do\s+anything\s+now`,
	`(?:enable|activate|enter|switch\s+to)\s+(?:developer|god|jailbreak|dan|unrestricted)\s+mode`,
	`(?:developer|god|jailbreak|dan)\s+mode\s+(?:enabled|activated|on)`,
	`jailbreak(?:ed)?\s+(?:mode|prompt)`,
	// Fake chat-template and role markers.
	`<\|im_start\|>\s*(?:system|assistant)`,
	`<\|system\|>`,
	`<<sys>>`,
	`\[(?:system|inst)\]`,
	`###\s*system\b`,
	`system\s*:`,
	// Prompt leaking.
	`(?:reveal|repeat|leak|print|show|output)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|original\s+|hidden\s+|initial\s+|secret\s+)?(?:system\s+prompt|initial\s+prompt|hidden\s+prompt|instructions\s+above|system\s+instructions)`,
	`(?:new|updated|real)\s+instructions\s*:`,
}, "|") + `)`)

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

// tokenPrefixes are API-token prefixes with the alphabet and length of the
// body that follows.
var tokenPrefixes = []struct {
	prefix   string
	alphabet string // "a": [A-Za-z0-9], "a_": plus '_', "a-": plus '-', "a_-": both
	min, max int
}{
	{"sk-", "a_-", 20, maxTokenBody}, // OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
	{"sk_live_", "a", 16, maxTokenBody},
	{"sk_test_", "a", 16, maxTokenBody},
	{"rk_live_", "a", 16, maxTokenBody},
	{"ghp_", "a", 36, 36},
	{"gho_", "a", 36, 36},
	{"ghu_", "a", 36, 36},
	{"ghs_", "a", 36, 36},
	{"ghr_", "a", 36, 36},
	{"github_pat_", "a_", 22, 255},
	{"glpat-", "a_-", 20, 64},
	{"xoxb-", "a-", 10, maxTokenBody},
	{"xoxp-", "a-", 10, maxTokenBody},
	{"xoxa-", "a-", 10, maxTokenBody},
	{"xoxr-", "a-", 10, maxTokenBody},
	{"xoxs-", "a-", 10, maxTokenBody},
	{"xapp-", "a-", 10, maxTokenBody},
	{"hf_", "a", 30, 64},
	{"npm_", "a", 36, 36},
	{"eyJ", "jwt", 0, 0},
}

func inAlphabet(c byte, alphabet string) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '_':
		return strings.IndexByte(alphabet, '_') >= 0
	case '-':
		return strings.IndexByte(alphabet, '-') >= 0
	}
	return false
}

func isTokenByte(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

// matchToken validates an API token whose prefix starts at start.
func matchToken(text string, start int) (int, bool) {
	if start > 0 && isTokenByte(text[start-1]) {
		return 0, false
	}
	for _, p := range tokenPrefixes {
		if !strings.HasPrefix(text[start:], p.prefix) {
			continue
		}
		if p.alphabet == "jwt" {
			return matchJWT(text, start)
		}
		pos := start + len(p.prefix)
		digits := 0
		for pos < len(text) && inAlphabet(text[pos], p.alphabet) && pos-start-len(p.prefix) < p.max {
			if isDigit(text[pos]) {
				digits++
			}
			pos++
		}
		n := pos - start - len(p.prefix)
		if n < p.min || (pos < len(text) && isTokenByte(text[pos])) || digits == 0 {
			continue
		}
		return pos, true
	}
	return 0, false
}

// matchJWT accepts header.payload.signature in base64url with a JSON
// header ("eyJ" is the base64 of `{"`).
func matchJWT(text string, start int) (int, bool) {
	const minSegment = 10
	pos := start
	for seg := 0; seg < 3; seg++ {
		if seg > 0 {
			if pos >= len(text) || text[pos] != '.' {
				return 0, false
			}
			pos++
		}
		s := pos
		for pos < len(text) && isTokenByte(text[pos]) && pos-s < maxTokenBody*4 {
			pos++
		}
		if pos-s < minSegment {
			return 0, false
		}
	}
	if pos < len(text) && (isTokenByte(text[pos]) || text[pos] == '.') {
		return 0, false
	}
	return pos, true
}

// awsKeyPrefixes start AWS access key ids; googleKeyPrefix starts Google
// API keys; cloudSettings are the setting names that precede AWS secret
// keys, Azure storage and Service Bus keys and Google service-account key
// ids.
var (
	awsKeyPrefixes  = []string{"AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA"}
	googleKeyPrefix = "AIza"
	cloudSettings   = []string{"aws_secret_access_key", "AccountKey=", "SharedAccessKey=", "private_key_id"}
)

// cloudKeywords feed the keyword automaton.
var cloudKeywords = append(append(append([]string(nil), awsKeyPrefixes...), googleKeyPrefix), cloudSettings...)

func isBase32Upper(c byte) bool { return isUpper(c) || (c >= '2' && c <= '7') }
func isBase64(c byte) bool      { return isAlnum(c) || c == '+' || c == '/' }

// matchCloud validates a cloud credential at a keyword hit and returns the
// span of the secret itself.
func matchCloud(text string, start int) (int, int, bool) {
	rest := text[start:]
	for _, p := range awsKeyPrefixes {
		if !strings.HasPrefix(rest, p) {
			continue
		}
		// Prefix + 16 base32 characters.
		const l = 20
		if len(rest) < l || (start > 0 && isAlnum(text[start-1])) || (len(rest) > l && isAlnum(rest[l])) {
			return 0, 0, false
		}
		for k := len(p); k < l; k++ {
			if !isBase32Upper(rest[k]) {
				return 0, 0, false
			}
		}
		return start, start + l, true
	}
	if strings.HasPrefix(rest, googleKeyPrefix) {
		// Prefix + 35 base64url characters.
		const l = 39
		if len(rest) < l || (start > 0 && isTokenByte(text[start-1])) || (len(rest) > l && isTokenByte(rest[l])) {
			return 0, 0, false
		}
		for k := len(googleKeyPrefix); k < l; k++ {
			if !isTokenByte(rest[k]) {
				return 0, 0, false
			}
		}
		return start, start + l, true
	}
	var key string
	for _, p := range cloudSettings {
		if len(rest) >= len(p) && strings.EqualFold(rest[:len(p)], p) {
			key = p
			break
		}
	}
	if key == "" || (start > 0 && isTokenByte(text[start-1])) {
		return 0, 0, false
	}
	pos := start + len(key)
	// Skip an assignment: spaces, quotes, '=' or ':'.
	for k := 0; k < 8 && pos < len(text) && strings.IndexByte(" \t\"':=", text[pos]) >= 0; k++ {
		pos++
	}
	v := pos
	switch key {
	case "aws_secret_access_key":
		for pos < len(text) && isBase64(text[pos]) && pos-v <= 40 {
			pos++
		}
		if pos-v != 40 {
			return 0, 0, false
		}
	case "AccountKey=", "SharedAccessKey=":
		for pos < len(text) && isBase64(text[pos]) && pos-v < 100 {
			pos++
		}
		for pos < len(text) && text[pos] == '=' && pos-v < 100 {
			pos++
		}
		if pos-v != 44 && pos-v != 88 {
			return 0, 0, false
		}
	case "private_key_id":
		for pos < len(text) && isHex(text[pos]) && pos-v <= 40 {
			pos++
		}
		if pos-v != 40 {
			return 0, 0, false
		}
	}
	return v, pos, true
}

// matchPrivateKey accepts a PEM private key from its BEGIN line through
// its END line, or through the end of the text when the END line is cut.
func matchPrivateKey(text string, start int) (int, bool) {
	const begin = "-----BEGIN "
	if !strings.HasPrefix(text[start:], begin) {
		return 0, false
	}
	head := text[start+len(begin) : min(len(text), start+len(begin)+maxPrivateKeyHead)]
	dash := strings.Index(head, "-----")
	if dash < 0 {
		return 0, false
	}
	label := head[:dash]
	if !strings.HasSuffix(label, "PRIVATE KEY") && !strings.HasSuffix(label, "PRIVATE KEY BLOCK") {
		return 0, false
	}
	body := start + len(begin) + dash + len("-----")
	endMarker := "-----END " + label + "-----"
	if k := strings.Index(text[body:], endMarker); k >= 0 {
		return body + k + len(endMarker), true
	}
	return len(text), true
}

// wordBoundary keeps a deny word from matching inside a longer word.
func wordBoundary(text string, start, end int, word string) bool {
	if isWordByte(word[0]) && start > 0 && isWordByte(text[start-1]) {
		return false
	}
	if isWordByte(word[len(word)-1]) && end < len(text) && isWordByte(text[end]) {
		return false
	}
	return true
}
