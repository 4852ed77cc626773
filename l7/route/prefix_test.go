package route

import "testing"

type plainPicker struct{ idx int }

func (p plainPicker) Pick(string, []*Backend) int { return p.idx }

type promptPicker struct {
	plainPicker
	got []byte
}

func (p *promptPicker) PickPrefix(_ string, bs []*Backend, prompt []byte) int {
	p.got = append(p.got[:0], prompt...)
	return len(bs) - 1
}

// A PrefixPicker is found by type assertion and gets the prompt; a plain
// Picker keeps working and WantsPrompt tells the caller not to bother.
func TestPrefixPickerDetected(t *testing.T) {
	pp := &promptPicker{plainPicker: plainPicker{0}}
	tb, err := New(compiled(), Options{Getenv: env, Picker: pp})
	if err != nil {
		t.Fatal(err)
	}
	if !tb.WantsPrompt() {
		t.Fatal("PrefixPicker not detected")
	}
	m, _ := tb.Lookup("m")
	r := &m.Routes[0]
	b := tb.BackendPrompt(r, []byte("system: be brief"))
	if b != r.Pool.Backends[len(r.Pool.Backends)-1] || string(pp.got) != "system: be brief" {
		t.Fatalf("BackendPrompt chose %v with prompt %q", b, pp.got)
	}
	if tb.Backend(&m.Fallback[0]) != nil {
		t.Fatal("provider route got a backend")
	}

	tb2, err := New(compiled(), Options{Getenv: env, Picker: plainPicker{1}})
	if err != nil {
		t.Fatal(err)
	}
	if tb2.WantsPrompt() {
		t.Fatal("plain Picker taken for a PrefixPicker")
	}
	m2, _ := tb2.Lookup("m")
	if b := tb2.BackendPrompt(&m2.Routes[0], []byte("x")); b != m2.Routes[0].Pool.Backends[1] {
		t.Fatalf("plain picker's choice not used: %v", b)
	}
	tb3, _ := New(compiled(), Options{Getenv: env})
	if tb3.WantsPrompt() {
		t.Fatal("no picker wants a prompt")
	}
}
