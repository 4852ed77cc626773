package inspect

import (
	"strings"
)

// Secrets: API tokens, JWTs, cloud credentials and private keys.

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
