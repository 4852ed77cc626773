package tokens

import (
	"encoding/json"
	"os"
	"testing"
)

// hasUnicode16 reports text holding code points newer than Go's tables,
// where tiktoken-go and regexp2 (the references of the other tests) differ
// from OpenAI's tiktoken.
func hasUnicode16(text string) bool {
	for _, r := range text {
		if isUnicode16(r) {
			return true
		}
	}
	return false
}

// TestUnicode16 checks counts of text full of code points assigned in
// Unicode 15.1 and 16.0 against testdata/unicode16.json, whose counts are
// OpenAI's tiktoken's (npm tiktoken 1.0.22; check with
// testdata/crosscheck.mjs). tiktoken-go, on Go's Unicode 15.0 tables,
// gets many of them wrong.
func TestUnicode16(t *testing.T) {
	b, err := os.ReadFile("testdata/unicode16.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []corpusEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) < 100 {
		t.Fatalf("%d entries", len(entries))
	}
	refDiffers := 0
	for _, enc := range []string{CL100K, O200K} {
		c, ref := counter(t, enc), reference(t, enc)
		for _, e := range entries {
			want := e.CL100K
			if enc == O200K {
				want = e.O200K
			}
			if got := c.Count(e.Text); got != want {
				t.Errorf("%s %s: Count = %d, OpenAI tiktoken %d", enc, e.Name, got, want)
			}
			if len(ref.EncodeOrdinary(e.Text)) != want {
				refDiffers++
			}
		}
	}
	if refDiffers == 0 {
		t.Error("tiktoken-go agrees on every entry: the file no longer tests the Unicode 16 classes")
	}
	t.Logf("tiktoken-go differs from OpenAI's tiktoken on %d of %d counts", refDiffers, 2*len(entries))
}

func TestUnicode16Classes(t *testing.T) {
	for _, tc := range []struct {
		r    rune
		want rclass
	}{
		{0x2EBF0, cL | cU | cW}, // CJK Extension I (15.1), Lo
		{0x13460, cL | cU | cW}, // Egyptian Hieroglyphs Extended-A (16.0), Lo
		{0x10D50, cL | cU},      // Garay capital (16.0), Lu
		{0x10D40, cN},           // Garay digit (16.0), Nd
		{0x10940, 0},            // Sidetic (17.0): unknown to tiktoken
		{'a', cL | cW},
	} {
		if got := classOf(tc.r); got != tc.want {
			t.Errorf("classOf(U+%04X) = %b, want %b", tc.r, got, tc.want)
		}
	}
}
