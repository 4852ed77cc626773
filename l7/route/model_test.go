package route

import "testing"

type modelPicker struct {
	promptPicker
	model string
}

func (p *modelPicker) PickModelHit(_, model string, bs []*Backend, prompt []byte) (int, float64) {
	p.model = model
	p.got = append(p.got[:0], prompt...)
	return 0, 0.5
}

func (p *modelPicker) PickPrefixHit(pool string, bs []*Backend, prompt []byte) (int, float64) {
	return p.PickPrefix(pool, bs, prompt), 0
}

// A ModelPicker gets the model the upstream is asked for with the prompt;
// an empty model, or a picker that is only a PrefixPicker, goes the
// BackendPrompt way.
func TestModelPickerGetsTheModel(t *testing.T) {
	mp := &modelPicker{}
	tb, err := New(compiled(), Options{Getenv: env, Picker: mp})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := tb.Lookup("m")
	r := &m.Routes[0]
	if b, hit := tb.BackendModel(r, "sql-lora", []byte("p")); b != r.Pool.Backends[0] || hit != 0.5 || mp.model != "sql-lora" || string(mp.got) != "p" {
		t.Fatalf("BackendModel chose %v (hit %v), model %q prompt %q", b, hit, mp.model, mp.got)
	}
	mp.model = ""
	if b, _ := tb.BackendModel(r, "", []byte("q")); b != r.Pool.Backends[len(r.Pool.Backends)-1] || mp.model != "" {
		t.Fatalf("empty model: chose %v, PickModelHit saw %q", b, mp.model)
	}
	if b, _ := tb.BackendModel(&m.Fallback[0], "x", nil); b != nil {
		t.Fatal("provider route got a backend")
	}
	pp := &promptPicker{}
	tb2, _ := New(compiled(), Options{Getenv: env, Picker: pp})
	m2, _ := tb2.Lookup("m")
	if b, _ := tb2.BackendModel(&m2.Routes[0], "sql-lora", []byte("r")); b != m2.Routes[0].Pool.Backends[len(m2.Routes[0].Pool.Backends)-1] || string(pp.got) != "r" {
		t.Fatalf("PrefixPicker: chose %v with prompt %q", b, pp.got)
	}
}
