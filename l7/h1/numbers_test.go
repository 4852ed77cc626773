package h1

import "testing"

func TestParseLength(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"999999999999999999", 999999999999999999, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false},
		{"0x10", 0, false}, {"1000000000000000000", 0, false}, // 19 digits
	} {
		if n, ok := ParseLength(c.in); ok != c.ok || ok && n != c.want {
			t.Errorf("ParseLength(%q) = %d, %v; want %d, %v", c.in, n, ok, c.want, c.ok)
		}
	}
}

// The string and byte forms agree, and end points at what follows the
// digits.
func TestParseChunkSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		end  int
		ok   bool
	}{
		{"0", 0, 1, true}, {"1a", 26, 2, true}, {"FF;name=v", 255, 2, true}, {"10 ", 16, 2, true},
		{"fffffffffffffff", 1<<60 - 1, 15, true},
		{"", 0, 0, false}, {";x", 0, 0, false}, {"g", 0, 0, false},
		{"1000000000000000", 0, 15, false}, // 16 digits
	} {
		n, end, ok := ParseChunkSize(c.in)
		nb, endb, okb := ParseChunkSize([]byte(c.in))
		if n != nb || end != endb || ok != okb {
			t.Fatalf("%q: string and byte forms differ", c.in)
		}
		if ok != c.ok || ok && (n != c.want || end != c.end) {
			t.Errorf("ParseChunkSize(%q) = %d, %d, %v; want %d, %d, %v", c.in, n, end, ok, c.want, c.end, c.ok)
		}
	}
}
