package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/infergate/infergate/l7/openai"
)

// The text a prefix-aware picker gets: messages in order, each led by its
// role, so the same words as system prompt and as user turn differ, and a
// continued conversation extends the earlier prompt byte for byte.
func TestAppendPrompt(t *testing.T) {
	turn1 := &openai.Request{
		Messages: []openai.Message{{Role: "system"}, {Role: "user"}},
		Texts:    []openai.Text{{Value: "be brief", Message: 0, Part: -1}, {Value: "hi", Message: 1, Part: -1}},
	}
	turn2 := &openai.Request{
		Messages: []openai.Message{{Role: "system"}, {Role: "user"}, {Role: "assistant"}, {Role: "user"}},
		Texts: []openai.Text{{Value: "be brief", Message: 0, Part: -1}, {Value: "hi", Message: 1, Part: -1},
			{Value: "hello", Message: 2, Part: -1}, {Value: "more", Message: 3, Part: 0}, {Value: "please", Message: 3, Part: 1}},
	}
	p1, p2 := appendPrompt(nil, turn1), appendPrompt(nil, turn2)
	if !bytes.HasPrefix(p2, p1) {
		t.Fatalf("turn 2 %q does not extend turn 1 %q", p2, p1)
	}
	if want := "\x1esystem\x1fbe brief\x1euser\x1fhi\x1eassistant\x1fhello\x1euser\x1fmoreplease"; string(p2) != want {
		t.Fatalf("got %q, want %q", p2, want)
	}
	swapped := &openai.Request{
		Messages: []openai.Message{{Role: "user"}, {Role: "user"}},
		Texts:    []openai.Text{{Value: "be brief", Message: 0, Part: -1}, {Value: "hi", Message: 1, Part: -1}},
	}
	if bytes.Equal(appendPrompt(nil, swapped), p1) {
		t.Fatal("the same text under another role gives the same prompt")
	}
	// Legacy completions: the prompt strings, no roles.
	comp := &openai.Request{Texts: []openai.Text{{Value: "once upon", Message: -1, Part: -1, Item: 0}}}
	if got := string(appendPrompt(nil, comp)); got != "once upon" {
		t.Fatalf("completion prompt %q", got)
	}
	// Bounded whatever the input.
	huge := &openai.Request{Messages: []openai.Message{{Role: "user"}},
		Texts: []openai.Text{{Value: strings.Repeat("x", 3*maxAffinityPromptBytes), Message: 0, Part: -1}}}
	if n := len(appendPrompt(nil, huge)); n != maxAffinityPromptBytes {
		t.Fatalf("%d bytes, want the bound %d", n, maxAffinityPromptBytes)
	}
}
