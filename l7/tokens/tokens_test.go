package tokens

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the reference tokenizer")

const goldenPath = "testdata/golden.json"

var setLoader sync.Once

// reference returns tiktoken-go's encoder, called directly, for comparison.
func reference(t testing.TB, encoding string) *tiktoken.Tiktoken {
	t.Helper()
	setLoader.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	enc, err := tiktoken.GetEncoding(encoding)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func counter(t testing.TB, encoding string) *Counter {
	t.Helper()
	c, err := Get(encoding)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadGolden(t *testing.T) []corpusEntry {
	t.Helper()
	if *update {
		cl, o2 := reference(t, CL100K), reference(t, O200K)
		var entries []corpusEntry
		all := make([]struct{ name, text string }, 0, len(handCorpus)+256)
		all = append(all, handCorpus...)
		all = append(all, generatedCorpus()...)
		for _, e := range all {
			entries = append(entries, corpusEntry{
				Name:   e.name,
				Text:   e.text,
				CL100K: len(cl.EncodeOrdinary(e.text)),
				O200K:  len(o2.EncodeOrdinary(e.text)),
			})
		}
		b, err := json.MarshalIndent(entries, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return entries
	}
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read golden corpus (regenerate with -update): %v", err)
	}
	var entries []corpusEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) < 200 {
		t.Fatalf("golden corpus has %d entries, want the full corpus", len(entries))
	}
	return entries
}

// TestGoldenCorpus checks Count, and the reference library itself, against
// the counts stored in testdata, so a change in either shows.
func TestGoldenCorpus(t *testing.T) {
	entries := loadGolden(t)
	for _, enc := range []string{CL100K, O200K} {
		c, ref := counter(t, enc), reference(t, enc)
		for _, e := range entries {
			want := e.CL100K
			if enc == O200K {
				want = e.O200K
			}
			if got := c.Count(e.Text); got != want {
				t.Errorf("%s %s: Count = %d, golden %d", enc, e.Name, got, want)
			}
			if got := len(ref.EncodeOrdinary(e.Text)); got != want {
				t.Errorf("%s %s: reference = %d, golden %d", enc, e.Name, got, want)
			}
		}
	}
}

// TestKnownCounts pins counts published in OpenAI's cookbook
// ("How to count tokens with tiktoken") and the corpus' long prompts' size.
func TestKnownCounts(t *testing.T) {
	for _, enc := range []string{CL100K, O200K} {
		if got := counter(t, enc).Count("tiktoken is great!"); got != 6 {
			t.Errorf("%s: Count(%q) = %d, cookbook says 6", enc, "tiktoken is great!", got)
		}
	}
	if got := counter(t, CL100K).Count(""); got != 0 {
		t.Errorf("empty text = %d tokens", got)
	}
}

// cookbookMessages are the example messages of OpenAI's cookbook, for which
// the cookbook shows the API reporting 129 prompt tokens for gpt-4 and
// gpt-3.5-turbo and 124 for gpt-4o and gpt-4o-mini.
var cookbookMessages = []Message{
	{Role: "system", Content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
	{Role: "system", Name: "example_user", Content: "New synergies will help drive top-line growth."},
	{Role: "system", Name: "example_assistant", Content: "Things working well together will increase revenue."},
	{Role: "system", Name: "example_user", Content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
	{Role: "system", Name: "example_assistant", Content: "Let's talk later when we're less busy about how to do better."},
	{Role: "user", Content: "This late pivot means we don't have time to boil the ocean for the client deliverable."},
}

func TestCountChatCookbook(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  int
	}{
		{"gpt-4", 129},
		{"gpt-4-0613", 129},
		{"gpt-3.5-turbo", 129},
		{"gpt-4o", 124},
		{"gpt-4o-mini", 124},
	} {
		c, err := ForModel(tc.model)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.CountChat(cookbookMessages); got != tc.want {
			t.Errorf("%s: CountChat = %d, cookbook/API say %d", tc.model, got, tc.want)
		}
	}
}

// TestCountChatParts checks that content parts count as their concatenated
// values would in the cookbook's formula, part by part.
func TestCountChatParts(t *testing.T) {
	c := counter(t, O200K)
	parts := []Message{{Role: "user", Parts: []string{"Describe this picture.", "Be brief."}}}
	want := tokensPerReply + tokensPerMessage + c.Count("user") + c.Count("Describe this picture.") + c.Count("Be brief.")
	if got := c.CountChat(parts); got != want {
		t.Errorf("parts: %d, want %d", got, want)
	}
	if got := c.CountChat(nil); got != tokensPerReply {
		t.Errorf("no messages: %d, want %d", got, tokensPerReply)
	}
}

func TestEncodingForModel(t *testing.T) {
	for model, want := range map[string]string{
		"gpt-4o":                 O200K,
		"gpt-4o-mini":            O200K,
		"gpt-4o-2024-08-06":      O200K,
		"chatgpt-4o-latest":      O200K,
		"o1":                     O200K,
		"o1-mini":                O200K,
		"o3-mini":                O200K,
		"o4-mini":                O200K,
		"gpt-4.1":                O200K,
		"gpt-4.1-nano":           O200K,
		"gpt-4.5-preview":        O200K,
		"GPT-4O":                 O200K,
		"openai/gpt-4o":          O200K,
		"gpt-4":                  CL100K,
		"gpt-4-turbo":            CL100K,
		"gpt-4-32k-0613":         CL100K,
		"gpt-3.5-turbo":          CL100K,
		"gpt-3.5-turbo-0125":     CL100K,
		"gpt-35-turbo":           CL100K,
		"text-embedding-3-small": CL100K,
		"text-embedding-3-large": CL100K,
		"text-embedding-ada-002": CL100K,
		"llama-3.1-8b":           DefaultEncoding,
		"o100-custom":            DefaultEncoding,
		"gpt-40":                 DefaultEncoding,
		"":                       DefaultEncoding,
	} {
		if got := EncodingForModel(model); got != want {
			t.Errorf("EncodingForModel(%q) = %s, want %s", model, got, want)
		}
	}
}

func TestGetUnknown(t *testing.T) {
	if _, err := Get("p50k_base"); err == nil {
		t.Error("Get(p50k_base) succeeded; only cl100k_base and o200k_base are offered")
	}
	c, err := ForModelEncoding("anything", O200K)
	if err != nil || c.Encoding() != O200K {
		t.Errorf("ForModelEncoding with an encoding: %v, %v", c, err)
	}
	c, err = ForModelEncoding("gpt-4", "")
	if err != nil || c.Encoding() != CL100K {
		t.Errorf("ForModelEncoding by model: %v, %v", c, err)
	}
	a, _ := Get(O200K)
	b, _ := ForModel("gpt-4o")
	if a != b {
		t.Error("counters for one encoding are not shared")
	}
}

// TestStreamEqualsWhole feeds every corpus entry in random pieces and
// checks the streamed total equals counting the whole text.
func TestStreamEqualsWhole(t *testing.T) {
	entries := loadGolden(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, enc := range []string{CL100K, O200K} {
		c := counter(t, enc)
		for _, e := range entries {
			want := e.CL100K
			if enc == O200K {
				want = e.O200K
			}
			for trial := 0; trial < 3; trial++ {
				s := c.CountCompletionText()
				writeInRuneChunks(s, e.Text, r, 12)
				if got := s.Tokens(); got != want {
					t.Fatalf("%s %s: streamed %d, whole %d", enc, e.Name, got, want)
				}
			}
		}
	}
}

// TestStreamCommits checks that pending text is counted and released at
// split points rather than held to the end.
func TestStreamCommits(t *testing.T) {
	c := counter(t, CL100K)
	s := c.CountCompletionText()
	text := strings.Repeat("hello world, this is a streamed completion. ", 200)
	for i := 0; i < len(text); i += 7 {
		s.WriteString(text[i:min(i+7, len(text))])
		if len(s.pending) > 64 {
			t.Fatalf("pending grew to %d bytes on spaced text", len(s.pending))
		}
	}
	if got, want := s.Tokens(), c.Count(text); got != want {
		t.Fatalf("streamed %d, whole %d", got, want)
	}
	// Text with no split point stays bounded.
	s = c.CountCompletionText()
	chunk := strings.Repeat("字", 1000)
	for i := 0; i < (maxPendingBytes/len(chunk))+10; i++ {
		s.WriteString(chunk)
	}
	if len(s.pending) > maxPendingBytes {
		t.Fatalf("pending %d bytes, bound %d", len(s.pending), maxPendingBytes)
	}
	if s.Tokens() == 0 {
		t.Fatal("no tokens counted")
	}
}

func TestConcurrentCount(t *testing.T) {
	entries := loadGolden(t)
	c := counter(t, O200K)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(entries); i += 8 {
				if got := c.Count(entries[i].Text); got != entries[i].O200K {
					errs <- entries[i].Name
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("concurrent count of %s differs", name)
	}
}

// TestGoldenCorpusFile guards against an -update run on a corpus that lost
// its hand-written entries.
func TestGoldenCorpusFile(t *testing.T) {
	entries := loadGolden(t)
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	for _, h := range handCorpus {
		if !names[h.name] {
			t.Errorf("golden corpus lacks %s", h.name)
		}
	}
}

// writeInRuneChunks writes text to s in pieces of 1 to maxRunes runes
// chosen by r, split at rune boundaries as JSON-decoded stream deltas are.
func writeInRuneChunks(s *CompletionCounter, text string, r *rand.Rand, maxRunes int) {
	for text != "" {
		n := 1 + r.IntN(maxRunes)
		i := 0
		for k := 0; k < n && i < len(text); k++ {
			_, size := utf8.DecodeRuneInString(text[i:])
			i += size
		}
		s.WriteString(text[:i])
		text = text[i:]
	}
}
