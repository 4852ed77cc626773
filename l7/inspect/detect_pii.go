package inspect

import (
	"net/netip"
	"strings"
)

// Personal data: e-mail addresses, card numbers, US social security
// numbers, IP addresses, phone numbers and IBANs.

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
