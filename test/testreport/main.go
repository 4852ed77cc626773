// Command testreport reads `go test -json` on standard input and writes what
// a person needs from a long run: each package's result line, the whole
// output of every test that failed, build errors, and at the end every
// skipped test with its reason and one closing count. make test pipes the
// suite through it so a skip can never pass unnoticed.
//
// It exits 1 when a test or package failed or a build broke, 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of test2json's output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// maxLine bounds one JSON line (a test that prints a megabyte in one line).
const maxLine = 16 << 20

type key struct{ pkg, test string }

type report struct {
	out      io.Writer
	logs     map[key][]string // a running test's output, kept until it ends
	skipped  []skip
	passed   int
	failed   int
	pkgFails int
}

type skip struct {
	pkg, test, reason string
}

func main() {
	r := &report{out: os.Stdout, logs: map[key][]string{}}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not test2json (a build error printed by go itself).
			fmt.Fprintln(r.out, string(line))
			continue
		}
		r.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport: reading go test output:", err)
		os.Exit(1)
	}
	if r.finish() {
		os.Exit(1)
	}
}

func (r *report) add(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(r.out, e.Output)
	case "output":
		if e.Test == "" {
			if pkgLine(e.Output) {
				fmt.Fprint(r.out, e.Output)
			}
			return
		}
		r.logs[k] = append(r.logs[k], e.Output)
	case "pass":
		if e.Test != "" {
			r.passed++
			delete(r.logs, k)
		}
	case "fail":
		if e.Test == "" {
			r.pkgFails++
			// Tests still running when the package failed (a panic, a
			// timeout): their output is the evidence.
			for lk, lines := range r.logs {
				if lk.pkg == e.Package {
					fmt.Fprint(r.out, strings.Join(lines, ""))
					delete(r.logs, lk)
				}
			}
			return
		}
		r.failed++
		for _, l := range r.logs[k] {
			fmt.Fprint(r.out, l)
		}
		delete(r.logs, k)
	case "skip":
		if e.Test == "" {
			return // a package without tests
		}
		r.skipped = append(r.skipped, skip{e.Package, e.Test, skipReason(r.logs[k])})
		delete(r.logs, k)
	}
}

// pkgLine reports whether a package-level output line is worth showing: the
// result lines and anything that is not the verbose run chatter.
func pkgLine(s string) bool {
	t := strings.TrimSpace(s)
	switch {
	case t == "", t == "PASS", strings.HasPrefix(t, "=== "), strings.HasPrefix(t, "--- PASS"),
		strings.HasPrefix(t, "testing: warning: no tests to run"):
		return false
	}
	return true
}

// skipReason is what the test said when it skipped: the last line of its
// output before the "--- SKIP" line, without the file:line prefix.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		t := strings.TrimSpace(lines[i])
		if t == "" || strings.HasPrefix(t, "--- SKIP") || strings.HasPrefix(t, "=== ") {
			continue
		}
		if _, after, ok := strings.Cut(t, ": "); ok && strings.Contains(t[:strings.Index(t, ": ")], ".go:") {
			return after
		}
		return t
	}
	return "(no reason given)"
}

// finish writes the skip list and the closing count; it reports whether the
// run failed.
func (r *report) finish() bool {
	sort.Slice(r.skipped, func(i, j int) bool {
		a, b := r.skipped[i], r.skipped[j]
		return a.pkg < b.pkg || a.pkg == b.pkg && a.test < b.test
	})
	if len(r.skipped) > 0 {
		fmt.Fprintf(r.out, "\nSkipped tests (%d):\n", len(r.skipped))
		for _, s := range r.skipped {
			fmt.Fprintf(r.out, "  SKIP %s %s: %s\n", s.pkg, s.test, s.reason)
		}
	}
	// Packages that failed with no failing test (a panic in TestMain, a
	// build error, a timeout) count as one failure each.
	failed := r.failed
	if r.pkgFails > r.failed {
		failed = r.pkgFails
	}
	fmt.Fprintf(r.out, "\ntests: %d passed, %d failed, %d skipped\n", r.passed, failed, len(r.skipped))
	return failed > 0
}
