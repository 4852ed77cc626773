package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzLoad: any input is either refused with a *ValidationError or compiles
// to a policy whose canonical YAML loads back to the same version. Seeds are
// the good and bad corpora (go test -fuzz FuzzLoad ./policy explores more).
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, c, err := Load(bytes.NewReader(b))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("refusal is not a ValidationError with problems: %v", err)
			}
			return
		}
		y, err := Marshal(c.Document())
		if err != nil {
			t.Fatal(err)
		}
		_, c2, err := Load(bytes.NewReader(y))
		if err != nil {
			t.Fatalf("canonical form refused: %v\n%s", err, y)
		}
		if c2.Version != c.Version {
			t.Fatalf("version %s became %s", c.Version, c2.Version)
		}
	})
}

func BenchmarkLoadFull(b *testing.B) {
	data, err := os.ReadFile("testdata/good/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := Load(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalFull(b *testing.B) {
	data, err := os.ReadFile("testdata/good/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	_, c, err := Load(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Marshal(c.Document()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkYAMLv3Strict is the peer: yaml.v3's own strict decoding into the
// same types (first error only, no line table, no validation or compile).
func BenchmarkYAMLv3Strict(b *testing.B) {
	data, err := os.ReadFile("testdata/good/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		var d Document
		if err := dec.Decode(&d); err != nil {
			b.Fatal(err)
		}
	}
}
