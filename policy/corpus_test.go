package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadCorpus: every document under testdata/bad is refused, with the
// problem named on its first line ("# want: <substring of the error>").
func TestBadCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 15 {
		t.Fatalf("only %d bad documents", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line must be \"# want: ...\", got %q", first)
			}
			doc, c, err := Load(bytes.NewReader(b))
			if err == nil {
				t.Fatalf("accepted: %+v %+v", doc, c)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *ValidationError: %v", err, err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error does not mention %q:\n%v", want, err)
			}
		})
	}
}

// TestHugeDocuments: size, list-length and problem-count bounds.
func TestHugeDocuments(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString(minimal + "\n  dataplane:\n    interfaces:\n")
		for b.Len() <= MaxDocumentBytes {
			b.WriteString("      - eth0 # padding padding padding padding padding padding\n")
		}
		_, _, err := Load(&b)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("document is larger than %d bytes", MaxDocumentBytes)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("list", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(minimal + "\n  dataplane:\n    localVIPs:\n")
		for i := 0; i <= MaxListItems; i++ {
			fmt.Fprintf(&b, "      - 198.18.%d.%d\n", i/250, i%250+1)
		}
		_, _, err := Load(strings.NewReader(b.String()))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("spec.dataplane.localVIPs: list has %d items; at most %d are allowed (line 7)", MaxListItems+1, MaxListItems)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("classes", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(minimal + "\n  dataplane:\n    rateLimits:\n      classes:\n")
		for i := 0; i <= MaxClasses; i++ {
			fmt.Fprintf(&b, "        - {name: c%d, sources: [198.18.%d.0/24]}\n", i, i)
		}
		_, _, err := Load(strings.NewReader(b.String()))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("spec.dataplane.rateLimits.classes: has %d classes; at most %d (line 8)", MaxClasses+1, MaxClasses)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("backends", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(minimal + "\n  pools:\n    - name: p\n      backends:\n")
		for i := 0; i <= MaxBackendsPerPool; i++ {
			fmt.Fprintf(&b, "        - {name: b%d, address: 198.18.%d.%d}\n", i, i/250, i%250+1)
		}
		_, _, err := Load(strings.NewReader(b.String()))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("spec.pools[0].backends: has %d backends; at most %d (line 8)", MaxBackendsPerPool+1, MaxBackendsPerPool)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("labels", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("apiVersion: infergate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: t\n  labels:\n")
		for i := 0; i <= MaxLabels; i++ {
			fmt.Fprintf(&b, "    l%d: v\n", i)
		}
		_, _, err := Load(strings.NewReader(b.String()))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("metadata.labels: has %d labels; at most %d (line 5)", MaxLabels+1, MaxLabels)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("words", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(minimal + "\n  gateway:\n    inspection:\n      rules:\n        - name: r\n          detector: deny-list\n          action: flag\n          words:\n")
		for i := 0; i <= MaxDenyWords; i++ {
			fmt.Fprintf(&b, "            - w%d\n", i)
		}
		_, _, err := Load(strings.NewReader(b.String()))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("has %d words; at most %d (line 12)", MaxDenyWords+1, MaxDenyWords)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("problems", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(minimal + "\n  dataplane:\n    localVIPs:\n")
		for i := 0; i < 1000; i++ {
			b.WriteString("      - not-an-address\n")
		}
		_, _, err := Load(strings.NewReader(b.String()))
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != maxProblems+1 || !strings.Contains(err.Error(), "stopping") {
			t.Fatalf("got %d problems", len(ve.Problems))
		}
	})
}

// TestGoodExamplesValid: the shipped examples compile and say why they exist.
func TestGoodExamplesValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(f)
		s.Scan()
		f.Close()
		if !strings.HasPrefix(s.Text(), "#") {
			t.Errorf("%s: start with a comment saying what it shows", file)
		}
		loadFile(t, file)
	}
}
