package main

import (
	"math/rand"
	"strings"
	"testing"
)

// TestLineDiffReconstructs: the edit script rebuilds both sides, and is
// minimal enough to keep every common line (checked against LCS length).
func TestLineDiffReconstructs(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		a := randLines(r)
		b := randLines(r)
		ops := lineDiff(a, b)
		var ra, rb []string
		same := 0
		for _, op := range ops {
			if op.kind != '+' {
				ra = append(ra, op.text)
			}
			if op.kind != '-' {
				rb = append(rb, op.text)
			}
			if op.kind == ' ' {
				same++
			}
		}
		if strings.Join(ra, "\n") != strings.Join(a, "\n") || strings.Join(rb, "\n") != strings.Join(b, "\n") {
			t.Fatalf("script does not rebuild the inputs:\n%q\n%q\n%v", a, b, ops)
		}
		if want := lcsLen(a, b); same != want {
			t.Fatalf("kept %d common lines, LCS is %d", same, want)
		}
	}
}

func randLines(r *rand.Rand) []string {
	n := r.Intn(12)
	out := make([]string, n)
	for i := range out {
		out[i] = string(rune('a' + r.Intn(4)))
	}
	return out
}

func lcsLen(a, b []string) int {
	prev := make([]int, len(b)+1)
	for i := range a {
		cur := make([]int, len(b)+1)
		for j := range b {
			if a[i] == b[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev = cur
	}
	return prev[len(b)]
}

func TestUnifiedDiffHunks(t *testing.T) {
	var a, b []string
	for i := 0; i < 30; i++ {
		a = append(a, string(rune('A'+i%26))+strings.Repeat("x", i/26))
	}
	b = append(b, a...)
	b[2] = "changed-2"
	b[25] = "changed-25"
	var out strings.Builder
	differs, err := unifiedDiff(&out, "old", "new", strings.Join(a, "\n")+"\n", strings.Join(b, "\n")+"\n")
	if err != nil || !differs {
		t.Fatal(differs, err)
	}
	want := `--- old
+++ new
@@ -1,6 +1,6 @@
 A
 B
-C
+changed-2
 D
 E
 F
@@ -23,7 +23,7 @@
 W
 X
 Y
-Z
+changed-25
 Ax
 Bx
 Cx
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if differs, _ := unifiedDiff(&out, "a", "b", "x\n", "x\n"); differs || out.Len() != 0 {
		t.Fatalf("equal texts: %v %q", differs, out.String())
	}
}
