package gpu

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// The producer of load signals must not depend on their consumer: no
// package under gpu/, nor its tests, imports anything under l7/.
func TestNoImportOfL7(t *testing.T) {
	const module = "github.com/infergate/infergate/"
	out, err := exec.Command("go", "list", "-deps", "-test",
		"-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	seen := 0
	for _, line := range bytes.Split(out, []byte("\n")) {
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			continue
		}
		pkg := strings.TrimSuffix(strings.Fields(strings.ReplaceAll(fields[0], "[", " "))[0], ".test")
		if !strings.HasPrefix(pkg, module+"gpu") {
			continue
		}
		seen++
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module+"l7/") || imp == module+"l7" {
				t.Errorf("%s imports %s: gpu/ must not depend on l7/", fields[0], imp)
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list listed no gpu/ package; the check checked nothing")
	}
}
