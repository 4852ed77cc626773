package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestLogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.Log(&Record{ID: "r", Time: time.Unix(int64(i), 0), Tenant: "t", Status: 200, PromptTokens: int64(i), Verdicts: []string{"email"}})
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != filePerm {
		t.Fatalf("stat %v %v", fi, err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	seen := map[int64]bool{}
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.Prompt != nil {
			t.Fatal("prompt present though never set")
		}
		seen[r.PromptTokens] = true
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct records, want 50", len(seen))
	}
}

// TestAppendJSONMatchesEncoder: the hand-written encoding is what
// encoding/json (HTML escaping off) writes, for awkward values too.
func TestAppendJSONMatchesEncoder(t *testing.T) {
	recs := []Record{
		{},
		{ID: "req-1", Time: time.Date(2026, 11, 25, 9, 0, 0, 123456789, time.UTC), Tenant: "acme", Key: "k", Subject: "s",
			Endpoint: "/chat/completions", Model: "m", Backend: "p/b", Status: 200, Stream: true, PromptTokens: 12,
			CompletionTokens: 34, UsageSource: "upstream", CostUSD: 0.000123, Verdicts: []string{"email", "ip"}, Attempts: 2,
			LatencyMS: 12.345, TTFTMS: 1.5, Error: "x", Prompt: []string{"a <b> & \"c\"\n\t\u2028 é \xff", "[REDACTED:email]"}},
		{ID: "c", Backend: "cache", Status: 200, Cache: "semantic", CachedTokens: 46, UsageSource: "cache"},
		{ID: "x", Time: time.Unix(0, 0).In(time.FixedZone("z", 3600)), CostUSD: 1e-9, LatencyMS: 1e21, TTFTMS: 123456789.125, Status: 499},
	}
	for _, r := range recs {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r); err != nil {
			t.Fatal(err)
		}
		got := string(r.AppendJSON(nil)) + "\n"
		if got != want.String() {
			t.Fatalf("got  %s\nwant %s", got, want.String())
		}
	}
}
