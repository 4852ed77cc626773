// Package tokens counts tokens exactly as OpenAI's tiktoken does, for the
// cl100k_base and o200k_base encodings, with the vocabularies embedded in
// the binary so that counting never touches the network.
//
// Encoders take a fraction of a second and tens of megabytes to build, so
// each encoding is built once per process, on first use, and shared: a
// Counter is safe for concurrent use.
//
// Counting takes time linear in the text, whatever the text. The
// pre-tokenizer splits it in one pass; a piece of up to 64 bytes (nearly
// every piece of prose or code) is merged by tiktoken's own rescan, which
// is fastest there; a longer piece (a run of letters without a space,
// base64, random bytes, a flood of one character) goes to a backtracking
// encoder whose work per byte is bounded by a constant (backtrack.go), in
// place of the merge by rank whose work grows with n log n. So the work of
// counting one request is bounded by the request's size, which the
// gateway's body limit bounds; no separate limit on counted bytes is
// needed. The encoder's tables are built with the vocabulary (about 9 MB
// and 0.1 s for cl100k_base, 17 MB and 0.3 s for o200k_base), so no
// request pays for them.
package tokens

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Encoding names.
const (
	CL100K = "cl100k_base"
	O200K  = "o200k_base"
)

// DefaultEncoding is used for models the table does not know: most
// OpenAI-compatible self-hosted servers report usage themselves, and
// cl100k_base is the closest common estimate for the rest.
const DefaultEncoding = CL100K

// Chat framing per OpenAI's cookbook (num_tokens_from_messages) for gpt-4,
// gpt-3.5-turbo (after 0301) and gpt-4o: every message is wrapped in
// <|start|>{role/name}\n{content}<|end|>\n, and the reply is primed with
// <|start|>assistant<|message|>.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensPerReply   = 3
)

// modelPrefixes maps model-name prefixes to encodings; the longest matching
// prefix wins, so "gpt-4o-mini" is o200k_base although "gpt-4" is cl100k_base.
var modelPrefixes = []struct {
	prefix, encoding string
}{
	{"gpt-5", O200K},
	{"gpt-4.5", O200K},
	{"gpt-4.1", O200K},
	{"gpt-4o", O200K},
	{"chatgpt-4o", O200K},
	{"gpt-oss", O200K},
	{"o1", O200K},
	{"o3", O200K},
	{"o4", O200K},
	{"gpt-4", CL100K},
	{"gpt-3.5", CL100K},
	{"gpt-35", CL100K}, // Azure's deployment spelling
	{"text-embedding-3", CL100K},
	{"text-embedding-ada-002", CL100K},
}

// EncodingForModel returns the encoding OpenAI uses for model, or
// DefaultEncoding when the model is not known. A provider prefix such as
// "openai/" is ignored.
func EncodingForModel(model string) string {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	model = strings.ToLower(model)
	best, enc := -1, DefaultEncoding
	for _, p := range modelPrefixes {
		if len(p.prefix) > best && strings.HasPrefix(model, p.prefix) && prefixEndsWord(model, p.prefix) {
			best, enc = len(p.prefix), p.encoding
		}
	}
	return enc
}

// prefixEndsWord keeps "o1" from matching "o100-custom" while accepting
// "o1", "o1-mini" and "gpt-4o-2024-08-06".
func prefixEndsWord(model, prefix string) bool {
	if len(model) == len(prefix) {
		return true
	}
	c := model[len(prefix)]
	last := prefix[len(prefix)-1]
	if last >= '0' && last <= '9' {
		// "gpt-4" must not claim "gpt-40"; "gpt-4.1" is listed on its own.
		return !(c >= '0' && c <= '9')
	}
	return true
}

// Counter counts tokens for one encoding. It is safe for concurrent use.
type Counter struct {
	name string
	bpe  *bpe
}

type lazyCounter struct {
	once sync.Once
	c    *Counter
	err  error
}

var counters = map[string]*lazyCounter{
	CL100K: {},
	O200K:  {},
}

// Get returns the shared Counter for an encoding name (cl100k_base or
// o200k_base), building it on first use.
func Get(encoding string) (*Counter, error) {
	lc, ok := counters[encoding]
	if !ok {
		return nil, fmt.Errorf("tokens: unknown encoding %q (want %s or %s)", encoding, CL100K, O200K)
	}
	lc.once.Do(func() {
		// The offline loader reads the vocabularies embedded in
		// tiktoken-go-loader; it only uses the file name of the address.
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(encoding + ".tiktoken")
		if err != nil {
			lc.err = fmt.Errorf("tokens: load %s vocabulary: %w", encoding, err)
			return
		}
		lc.c = &Counter{name: encoding, bpe: newBPE(ranks, encoding)}
		// Building leaves tens of MB of garbage (the vocabulary map,
		// the intermediate tables) against a live heap of a few MB once
		// the tables are off the heap. Collected by the pacer's next
		// cycle, it would set that cycle's heap goal from the build's
		// peak and make a fresh gateway page-fault through a heap many
		// times what it needs; collected now, once per encoding, the
		// goal starts from what requests really keep.
		runtime.GC()
	})
	return lc.c, lc.err
}

// ForModel returns the shared Counter for a model name (see EncodingForModel).
func ForModel(model string) (*Counter, error) {
	return Get(EncodingForModel(model))
}

// ForModelEncoding uses encoding when set (a policy's configured encoding)
// and falls back to the model's.
func ForModelEncoding(model, encoding string) (*Counter, error) {
	if encoding != "" {
		return Get(encoding)
	}
	return ForModel(model)
}

// Encoding is the name of the counter's encoding.
func (c *Counter) Encoding() string { return c.name }

// Count returns the number of tokens in text. Special-token markers such as
// "<|endoftext|>" count as ordinary text, as they do when a client sends
// them inside a prompt.
func (c *Counter) Count(text string) int {
	if text == "" {
		return 0
	}
	return c.bpe.count(text)
}

// Message is one chat message as far as token counting is concerned.
type Message struct {
	Role string
	// Name is the optional participant name; it costs one extra token.
	Name string
	// Content is the message text when the request sent a plain string.
	Content string
	// Parts holds the text of each "text" part when the request sent an
	// array of content parts. Image and audio parts are priced by the
	// provider from their size, which the gateway cannot see, and are left
	// to the usage the upstream reports.
	Parts []string
	// Extra holds any other text the model reads, such as tool-call
	// arguments or a tool_call_id, each counted as its own value.
	Extra []string
}

// CountChat counts the prompt tokens of a chat request the way OpenAI's
// cookbook does for gpt-4, gpt-3.5-turbo and gpt-4o: every value of every
// message is encoded, plus 3 tokens of framing per message, 1 per name and 3
// that prime the reply.
func (c *Counter) CountChat(messages []Message) int {
	n := tokensPerReply
	for i := range messages {
		m := &messages[i]
		n += tokensPerMessage
		n += c.Count(m.Role)
		n += c.Count(m.Content)
		for _, p := range m.Parts {
			n += c.Count(p)
		}
		if m.Name != "" {
			n += c.Count(m.Name) + tokensPerName
		}
		for _, e := range m.Extra {
			n += c.Count(e)
		}
	}
	return n
}
