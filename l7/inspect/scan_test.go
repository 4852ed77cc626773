package inspect

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/policy"
)

// scanOneStream scans text as one stream, never split: the reference the
// two-stream scan must agree with.
func scanOneStream(in *Inspector, text string) []span {
	s := in.newScratch()
	s.keyTo, s.injChecks, s.injDone = 0, 0, false
	var cur cursor
	in.run(text, 0, len(text), 0, s, &cur)
	if len(in.customs) > 0 {
		in.scanCustom(text, s)
	}
	return s.spans
}

func scanSpans(in *Inspector, text string) []span {
	s := in.newScratch()
	in.scan(text, s)
	return s.spans
}

// randomText glues keywords (in random case), trigger bytes, validator
// bait and filler so that keywords and values land anywhere, the middle
// of the text included.
func randomText(rng *rand.Rand, sc *scanner, n int) string {
	pieces := []string{
		" ", "the ", "report ", "\n", "@", ":", "+", "(", "1", "42", "4111 1111 1111 1111", "123-45-6789",
		"198.18.0.9", "2001:db8::1", "bob@example.com", "DE89 3704 0044 0532 0130 00", "DE", "GB82",
		"\u200b", "\U000E0041", "é", "Bluebird", "top secret", "PROJECT-0042", "-----BEGIN RSA PRIVATE KEY-----",
		"-----END RSA PRIVATE KEY-----", "AKIAIOSFODNN7EXAMPLE", "ghp_1234567890abcdefghijABCDEFGHIJ123456",
	}
	var b strings.Builder
	for b.Len() < n {
		switch rng.IntN(3) {
		case 0:
			k := sc.keywords[rng.IntN(len(sc.keywords))].text
			if rng.IntN(2) == 0 {
				k = strings.ToUpper(k)
			}
			b.WriteString(k)
		case 1:
			b.WriteString(pieces[rng.IntN(len(pieces))])
		default:
			b.WriteByte(byte(rng.IntN(256)))
		}
	}
	return b.String()[:n]
}

// TestAutomatonFindsEveryKeyword steps the automaton by hand and checks
// that the keywords ending at each byte are exactly those a plain
// case-insensitive comparison finds there, and that a step is marked as an
// event exactly when a keyword ends there or the byte is a trigger.
func TestAutomatonFindsEveryKeyword(t *testing.T) {
	cfg := allRules("flag")
	cfg.Rules = append(cfg.Rules, policy.InspectionRule{Name: "r-deny2", Detector: DetDenyList,
		Words: []string{"re", "report", "port", "a", "aaa", "ignore all"}, Action: "flag"})
	in := mustNew(t, cfg)
	sc := in.sc
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		text := randomText(rng, sc, 1+rng.IntN(600))
		st := uint32(0)
		for i := 0; i < len(text); i++ {
			v := sc.col[text[i]][st]
			st = v &^ eventBit
			var got, want []int
			for _, id := range sc.outs[st] {
				got = append(got, int(id))
			}
			for id, k := range sc.keywords {
				if i+1 >= len(k.text) && strings.EqualFold(text[i+1-len(k.text):i+1], k.text) {
					want = append(want, id)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%q at %d: keywords %v, want %v", text, i, got, want)
			}
			if ev := v&eventBit != 0; ev != (len(want) > 0 || sc.trig[text[i]] != 0) {
				t.Fatalf("%q at %d: event bit %v with keywords %v and trigger %#x", text, i, ev, want, sc.trig[text[i]])
			}
		}
	}
}

// TestSplitScanMatchesOneStream checks that scanning a long text as
// interleaved streams finds the same spans, in the same order, as one
// stream: keywords and values across the streams' borders, more events
// than a stream holds at once, and overlaps too long to split.
func TestSplitScanMatchesOneStream(t *testing.T) {
	long := strings.Repeat("x", 200) // a deny word longer than 1/8 of short texts
	cfg := allRules("flag")
	cfg.Rules = append(cfg.Rules, policy.InspectionRule{Name: "r-long", Detector: DetDenyList,
		Words: []string{long}, Action: "flag"})
	ins := []*Inspector{mustNew(t, allRules("flag")), mustNew(t, cfg), mustNew(t, gatewayBenchRules)}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(in *Inspector, text string) {
		t.Helper()
		got, want := scanSpans(in, text), scanOneStream(in, text)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d-byte text %q: split scan %v, one stream %v", len(text), text, got, want)
		}
	}
	for _, in := range ins {
		for range 300 {
			check(in, randomText(rng, in.sc, splitMin+rng.IntN(3000)))
		}
		// Every other byte a trigger: the streams fill their lists of
		// held events.
		check(in, strings.Repeat("1 ", 2000))
		check(in, strings.Repeat("A1 ", 1000)+strings.Repeat("b", 1000))
		check(in, strings.Repeat("b", 3000)+strings.Repeat("@1:", 1000))
		// A value or keyword at every offset across the middle.
		for _, n := range []int{splitMin, splitMin + 1, splitMin + 2, splitMin + 3, 1000, 1001, 1002, 1003} {
			for _, v := range []string{"4111 1111 1111 1111", "Ignore previous instructions", "DE89 3704 0044 0532 0130 00",
				"ghp_1234567890abcdefghijABCDEFGHIJ123456", "AKIAIOSFODNN7EXAMPLE", "-----BEGIN ", long} {
				// Where each stream's own stretch begins.
				ov := in.sc.maxLen
				stride := (n+(streams-1)*ov)/streams - ov
				for k := 1; k < streams; k++ {
					at := k*stride + ov
					for off := max(0, at-len(v)-2); off <= at+2 && off+len(v) <= n; off++ {
						check(in, strings.Repeat(" ", off)+v+strings.Repeat(" ", n-off-len(v)))
					}
				}
			}
		}
	}
}

// ibanAtCapitals finds IBANs the way the scanner once did, trying every
// capital that starts a word: the reference for triggering at the first
// check digit instead.
func ibanAtCapitals(text string) [][2]int {
	var found [][2]int
	to := 0
	for i := 0; i < len(text); i++ {
		if isUpper(text[i]) && i >= to && (i == 0 || !isAlnum(text[i-1])) {
			if end, ok := matchIBAN(text, i); ok {
				found = append(found, [2]int{i, end})
				to = end
			}
		}
	}
	return found
}

// TestIBANTrigger checks that triggering IBANs at their first digit finds
// exactly what trying every word-initial capital finds: IBANs at the very
// start and end of the text, after other capitals, glued to each other,
// cut short at the end.
func TestIBANTrigger(t *testing.T) {
	only := mustNew(t, policy.Inspection{Rules: []policy.InspectionRule{{Name: "iban", Detector: DetIBAN, Action: "flag"}}})
	all := mustNew(t, allRules("flag"))
	ibans := []string{"DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR14 2004 1010 0505 0001 3M02 606", "DE89370400440532013000"}
	texts := []string{
		"DE89 3704 0044 0532 0130 00", "x DE89370400440532013000", "ADE89370400440532013000", "A DE89370400440532013000 B",
		"DE89370400440532013000DE89370400440532013000", "DE89370400440532013000 DE89370400440532013000",
		"GB82WEST12345698765432GB", "GB82WEST1234569876543", "DE", "DE8", "DE89", "D", "8", "DE 89", "(DE89370400440532013000)",
		"1DE89370400440532013000", "DE89 3704 0044 0532 0130 00 FR14 2004 1010 0505 0001 3M02 606.",
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		texts = append(texts, mixText(rng, 80, ibans, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " .x-"))
	}
	for _, text := range texts {
		want := ibanAtCapitals(text)
		for _, in := range []*Inspector{only, all} {
			var got [][2]int
			for _, sp := range scanSpans(in, text) {
				if in.rules[sp.rule].det == dIBAN {
					got = append(got, [2]int{sp.start, sp.end})
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: IBANs %v, want %v", text, got, want)
			}
		}
	}
}

// TestNumberCandidate checks that where numberCandidate rules a number
// out, no numeric validator matches, on texts dense with digits and
// separators.
func TestNumberCandidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"4111 1111 1111 1111", "4111111111111111", "378282246310005", "123-45-6789", "198.18.0.9",
		"+1 (555) 123-4567", "(555) 123-4567", "555.123.4567", "1-555-123-4567", "2019", "12,000"}
	ruledOut := 0
	for range 3000 {
		text := mixText(rng, 60, pieces, "0123456789", " -.,()+xs")
		for i := 0; i < len(text); i++ {
			if numberCandidate(text, i) {
				continue
			}
			ruledOut++
			_, card := matchCard(text, i)
			_, ssn := matchSSN(text, i)
			_, ip := matchIPv4(text, i)
			_, phone := matchPhone(text, i)
			if card || ssn || ip || phone {
				t.Fatalf("%q at %d ruled out, but card %v ssn %v ipv4 %v phone %v", text, i, card, ssn, ip, phone)
			}
		}
	}
	if ruledOut == 0 {
		t.Fatal("nothing was ruled out")
	}
}

// mixText makes a random text of at least n bytes: each step adds either
// one of pieces, cut short by up to two bytes, or one byte drawn from one
// of the byte sets, all choices equally likely.
func mixText(rng *rand.Rand, n int, pieces []string, sets ...string) string {
	var b strings.Builder
	for b.Len() < n {
		if k := rng.IntN(1 + len(sets)); k > 0 {
			set := sets[k-1]
			b.WriteByte(set[rng.IntN(len(set))])
			continue
		}
		v := pieces[rng.IntN(len(pieces))]
		b.WriteString(v[:len(v)-rng.IntN(3)])
	}
	return b.String()
}
