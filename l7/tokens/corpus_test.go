package tokens

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// corpusEntry is one prompt of the golden corpus with the counts the
// reference tokenizer gave for it.
type corpusEntry struct {
	Name   string `json:"name"`
	Text   string `json:"text"`
	CL100K int    `json:"cl100k_base"`
	O200K  int    `json:"o200k_base"`
}

// corpusSeed fixes the generated part of the corpus; changing it changes
// testdata/golden.json.
const corpusSeed = 20261125

// handCorpus covers the pre-tokenizer's alternatives one by one.
var handCorpus = []struct{ name, text string }{
	{"cookbook-string", "tiktoken is great!"},
	{"hello", "Hello, world!"},
	{"english-paragraph", "The quick brown fox jumps over the lazy dog. It wasn't the first time; the dog had seen it before, and he'd see it again."},
	{"contractions", "I'm sure you're right, they'll come. It's WE'VE, HE'D, She'S, y'ALL'll 'tis"},
	{"numbers", "1 12 123 1234 12345 123456 3.14159 1,000,000 0x1F 2026-11-25 10:50:00Z 1e-9"},
	{"code-go", "func main() {\n\tfor i := 0; i < 10; i++ {\n\t\tfmt.Println(i*i, \"squared\")\n\t}\n}\n"},
	{"code-python", "def f(x):\n    if x <= 1:\n        return x\n    return f(x - 1) + f(x - 2)  # fib\n\n\nprint([f(n) for n in range(10)])\n"},
	{"json", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.7,"stream":true,"n":1,"stop":["\n\n"]}`},
	{"json-pretty", "{\n  \"a\": [1, 2, 3],\n  \"b\": {\"c\": null, \"d\": false},\n  \"e\": \"x\\u00e9\"\n}"},
	{"cjk-chinese", "我们今天去公园散步，天气非常好。你觉得怎么样？"},
	{"cjk-japanese", "東京は日本の首都です。ひらがなとカタカナ、そして漢字を使います。"},
	{"cjk-korean", "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 좋네요!"},
	{"emoji", "Great job 👍🏽! 👨‍👩‍👧‍👦 family, 🇩🇪🇯🇵 flags, ❤️‍🔥 and 🧑🏿‍💻 at work 🚀🚀🚀"},
	{"arabic", "مرحبا بالعالم، كيف حالك اليوم؟"},
	{"hindi-marks", "नमस्ते दुनिया, आप कैसे हैं? हिन्दी में लिखें।"},
	{"cyrillic", "Привет, мир! Съешь же ещё этих мягких французских булок."},
	{"combining", "e\u0301le\u0300ve cafe\u0301 Zu\u0308rich n\u0303 A\u030a"},
	{"mixed-case-o200k", "HTTPServer XMLHttpRequest iPhone McDonald's camelCaseWord ALLCAPS'S"},
	{"spaces-run", "a    b     c      d                 e"},
	{"newlines-run", "line1\n\n\nline2\r\n\r\nline3\n \n \nline4\n"},
	{"tabs-mixed", "\t\t  \t x \t\n\t y"},
	{"trailing-ws", "ends with spaces   "},
	{"leading-ws", "     starts with spaces"},
	{"only-ws", " \n\t\r\n   \n"},
	{"unicode-spaces", "a\u00a0b\u3000c\u2003d\u2028e\u0085f  \u00a0 g"},
	{"punct", "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} /// \\\\\\ ||| ~~~ ``` '''"},
	{"punct-newlines", "end.\n\n// comment\n/* block */\n<tag/>\n"},
	{"special-markers", "Do not stop at <|endoftext|> or <|endofprompt|> or <|fim_prefix|>, they are text."},
	{"url", "See https://example.com/path/to/page?q=token+counting&lang=en#section-2 for details."},
	{"math", "∀x∈ℝ: x² ≥ 0, ∑ᵢ aᵢ = π ≈ 3.14, √2, ∞, ≠, ≤"},
	{"zero-width", "in\u200bvis\u200cible\u200d joi\u2060ner \ufeffbom"},
	{"tag-chars", "hi\U000E0068\U000E0069\U000E0020there"},
	{"apostrophes", "'s 't 're 've 'm 'll 'd ’s don’t 'S 'T"},
	{"single-char", "x"},
	{"single-emoji", "🙂"},
}

// generatedCorpus builds long and random prompts from a fixed seed.
func generatedCorpus() []struct{ name, text string } {
	r := rand.New(rand.NewPCG(corpusSeed, corpusSeed))
	var out []struct{ name, text string }
	fragments := make([]string, 0, len(handCorpus))
	for _, h := range handCorpus {
		fragments = append(fragments, h.text)
	}
	words := strings.Fields("the of and to in is you that it he was for on are as with his they I at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part")
	// Long prompts: 4-8 KB mixes of prose, code and unicode fragments.
	for i := 0; i < 12; i++ {
		target := 4096 + r.IntN(4096)
		var b strings.Builder
		for b.Len() < target {
			switch r.IntN(4) {
			case 0:
				b.WriteString(fragments[r.IntN(len(fragments))])
			default:
				n := 5 + r.IntN(30)
				for j := 0; j < n; j++ {
					if j > 0 {
						b.WriteByte(' ')
					}
					w := words[r.IntN(len(words))]
					if r.IntN(10) == 0 {
						w = strings.ToUpper(w[:1]) + w[1:]
					}
					b.WriteString(w)
				}
				b.WriteString([]string{". ", ".\n", "\n\n", ", ", "? "}[r.IntN(5)])
			}
		}
		out = append(out, struct{ name, text string }{fmt.Sprintf("long-%02d", i), b.String()})
	}
	// Random strings over an alphabet of characters that sit on the
	// pre-tokenizer's class boundaries.
	alphabet := []rune("aZéÉß 0123456789\t\n\r'’.,!?-_/\\\"{}[]<>|`~@#$%^&*()+=:;\u00a0\u3000\u2003\u0301\u0308\u200b\u200d\ufeff中文日本語한국어ñÑДжΩπ🙂👍🏽🇩🇪\U000E0041")
	for i := 0; i < 200; i++ {
		n := 1 + r.IntN(120)
		rs := make([]rune, n)
		for j := range rs {
			rs[j] = alphabet[r.IntN(len(alphabet))]
		}
		out = append(out, struct{ name, text string }{fmt.Sprintf("random-%03d", i), string(rs)})
	}
	return out
}
