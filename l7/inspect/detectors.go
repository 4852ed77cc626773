package inspect

import (
	"strings"
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
