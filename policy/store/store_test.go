package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infergate/infergate/policy"
)

func doc(t *testing.T, i int) ([]byte, *policy.Compiled) {
	t.Helper()
	b := []byte(fmt.Sprintf(`apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: p%d
spec:
  pools:
    - name: p
      backends: [{name: b, address: 198.18.%d.%d, port: 8000}]
`, i, i/250, i%250+1))
	_, c, err := policy.Load(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func versions(es []Entry) []string {
	var out []string
	for _, e := range es {
		v := e.Version
		if e.Current {
			v += "*"
		}
		out = append(out, v)
	}
	return out
}

// TestHistoryAndRollbackAcrossRestart: what was applied and rolled back is
// there after the store is closed and reopened (an agent restart).
func TestHistoryAndRollbackAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, _, err := s.Current(); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("empty store: %v", err)
	}
	var docs [][]byte
	var cs []*policy.Compiled
	for i := 1; i <= 3; i++ {
		d, c := doc(t, i)
		docs, cs = append(docs, d), append(cs, c)
		if _, err := s.Save(d, c); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s = open(t, dir)
	e, b, err := s.Current()
	if err != nil || e.Version != cs[2].Version || !bytes.Equal(b, docs[2]) || e.Name != "p3" {
		t.Fatalf("after restart current = %+v %v", e, err)
	}
	got := fmt.Sprint(versions(s.History()))
	want := fmt.Sprint([]string{cs[2].Version + "*", cs[1].Version, cs[0].Version})
	if got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
	rb, err := s.SetCurrent("previous", nil)
	if err != nil || rb.Version != cs[1].Version || rb.Seq != 4 {
		t.Fatalf("rollback previous: %+v %v", rb, err)
	}
	s.Close()

	s = open(t, dir)
	e, b, err = s.Current()
	if err != nil || e.Version != cs[1].Version || !bytes.Equal(b, docs[1]) {
		t.Fatalf("after rollback and restart current = %+v %v", e, err)
	}
	if h := s.History(); len(h) != 4 || !h[0].Current || h[0].Seq != 4 {
		t.Fatalf("history after rollback: %+v", h)
	}
	// previous of the rolled-back-to version is the one it replaced.
	if p, err := s.Previous(); err != nil || p.Version != cs[2].Version {
		t.Fatalf("previous: %+v %v", p, err)
	}
	if _, err := s.SetCurrent(cs[0].Version, nil); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := s.Current(); e.Version != cs[0].Version {
		t.Fatalf("rollback to %s: current %s", cs[0].Version, e.Version)
	}
	if _, err := s.SetCurrent("0123456789abcdef", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	if _, _, err := s.Get(cs[2].Version); err != nil {
		t.Fatal(err)
	}
}

// TestCrashMidWrite: leftovers of interrupted writes (temp files, a
// document written whose index update never happened) leave the last good
// version in force, and the store keeps working.
func TestCrashMidWrite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	d1, c1 := doc(t, 1)
	if _, err := s.Save(d1, c1); err != nil {
		t.Fatal(err)
	}
	s.Close()

	d2, c2 := doc(t, 2)
	// Crash while writing the new index: a torn temp file.
	torn := filepath.Join(dir, tmpPrefix+"index.json-12345")
	if err := os.WriteFile(torn, []byte(`{"entries":[{"seq":2,"vers`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Crash after the document was renamed into place, before the index
	// (a torn one here, as a disk that lied about fsync would leave).
	if err := os.WriteFile(filepath.Join(dir, versionsDir, sum(d2)+".yaml"), d2[:len(d2)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	tornDoc := filepath.Join(dir, versionsDir, tmpPrefix+sum(d2)+".yaml-999")
	if err := os.WriteFile(tornDoc, d2[:10], 0o600); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	e, b, err := s.Current()
	if err != nil || e.Version != c1.Version || !bytes.Equal(b, d1) {
		t.Fatalf("after crash current = %+v %v", e, err)
	}
	for _, p := range []string{torn, tornDoc} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	// Saving the version whose document was half-written rewrites it.
	if _, err := s.Save(d2, c2); err != nil {
		t.Fatal(err)
	}
	if _, b, err := s.Current(); err != nil || !bytes.Equal(b, d2) {
		t.Fatalf("after re-save: %v", err)
	}
}

// TestCorruptDocument: a stored document that no longer matches its
// checksum is reported, not served.
func TestCorruptDocument(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	d1, c1 := doc(t, 1)
	if _, err := s.Save(d1, c1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, versionsDir, sum(d1)+".yaml"), []byte("flipped"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Current(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, indexFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt index: %v", err)
	}
}

// TestConcurrentAppliesSerialised: applies from many goroutines never run
// their apply step at the same time, and every one is recorded.
func TestConcurrentAppliesSerialised(t *testing.T) {
	s := open(t, t.TempDir())
	const n = 24
	type job struct {
		d []byte
		c *policy.Compiled
	}
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i].d, jobs[i].c = doc(t, i)
	}
	var inFlight, maxInFlight atomic.Int32
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Apply(j.d, j.c, func() error {
				cur := inFlight.Add(1)
				for {
					m := maxInFlight.Load()
					if cur <= m || maxInFlight.CompareAndSwap(m, cur) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				inFlight.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := maxInFlight.Load(); m != 1 {
		t.Fatalf("%d applies ran at once", m)
	}
	h := s.History()
	if len(h) != n {
		t.Fatalf("%d entries recorded, want %d", len(h), n)
	}
	seen := map[uint64]bool{}
	for i, e := range h {
		if seen[e.Seq] || e.Seq != uint64(n-i) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		seen[e.Seq] = true
	}
	// The current one is the last recorded.
	if e, _, err := s.Current(); err != nil || e.Seq != n {
		t.Fatalf("current %+v %v", e, err)
	}
}

// TestFailedApplyKeepsCurrent: an apply that fails records nothing.
func TestFailedApplyKeepsCurrent(t *testing.T) {
	s := open(t, t.TempDir())
	d1, c1 := doc(t, 1)
	d2, c2 := doc(t, 2)
	if _, err := s.Save(d1, c1); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("kernel refused the map update")
	if _, err := s.Apply(d2, c2, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if e, _, _ := s.Current(); e.Version != c1.Version || len(s.History()) != 1 {
		t.Fatalf("failed apply changed the store: %+v", s.History())
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), versionsDir, sum(d2)+".yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed apply left its document: %v", err)
	}
}

// TestHistoryBounded: at most MaxHistory entries; documents of dropped
// versions are deleted.
func TestHistoryBounded(t *testing.T) {
	s := open(t, t.TempDir())
	var first *policy.Compiled
	for i := 0; i < MaxHistory+10; i++ {
		d, c := doc(t, i)
		if i == 0 {
			first = c
		}
		if _, err := s.Save(d, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.History()); n != MaxHistory {
		t.Fatalf("%d entries kept", n)
	}
	files, _ := filepath.Glob(filepath.Join(s.Dir(), versionsDir, "*.yaml"))
	if len(files) != MaxHistory {
		t.Fatalf("%d documents kept", len(files))
	}
	if _, err := s.SetCurrent(first.Version, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped version still reachable: %v", err)
	}
}

// TestLocked: one agent per state directory.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

// TestSameVersionTwoSpellings: two documents with one canonical form (and
// so one version) are both kept intact.
func TestSameVersionTwoSpellings(t *testing.T) {
	s := open(t, t.TempDir())
	d1, c1 := doc(t, 1)
	d2 := append([]byte("# the same policy, with a comment\n"), d1...)
	_, c2, err := policy.Load(bytes.NewReader(d2))
	if err != nil || c2.Version != c1.Version {
		t.Fatalf("setup: %v %s %s", err, c1.Version, c2.Version)
	}
	if _, err := s.Save(d1, c1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(d2, c2); err != nil {
		t.Fatal(err)
	}
	h := s.History()
	if _, b, err := s.Current(); err != nil || !bytes.Equal(b, d2) {
		t.Fatalf("current: %v", err)
	}
	// The older entry still reads back, unchanged.
	if _, err := s.readDoc(h[1]); err != nil {
		t.Fatalf("older spelling: %v", err)
	}
}

// TestClear: delete leaves nothing in force; rollback previous restores it.
func TestClear(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	d1, c1 := doc(t, 1)
	if _, err := s.Save(d1, c1); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(nil); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("second clear: %v", err)
	}
	s.Close()
	s = open(t, dir)
	if _, _, err := s.Current(); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("after clear and restart: %v", err)
	}
	var applied []byte
	e, err := s.SetCurrent("previous", func(doc []byte, _ Entry) error { applied = doc; return nil })
	if err != nil || e.Version != c1.Version || !bytes.Equal(applied, d1) {
		t.Fatalf("restore: %+v %v", e, err)
	}
}
