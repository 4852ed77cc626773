package scrape

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/infergate/infergate/gpu/score"
)

// vLLM's lora_requests_info, in the format vLLM prints it: the series with
// the latest time is current (not the last printed, not a union of all),
// its running and waiting adapters are read once each, and the payload's
// load signals are read as before.
func TestParseVLLMLoRAInfo(t *testing.T) {
	for _, kind := range []Kind{Auto, VLLM} {
		m, err := Parse(strings.NewReader(fixture(t, "vllm_lora.txt")), kind)
		if err != nil {
			t.Fatalf("kind %q: %v", kind, err)
		}
		want := score.HasKVCache | score.HasRunning | score.HasWaiting | score.HasKVTokens
		if m.Signals != want {
			t.Fatalf("signals %v, want %v", m.Signals, want)
		}
		run, wait := []string{"chat-de", "sql-lora", "summarize-v2"}, []string{"sql-lora", "tool-call"}
		if m.LoRA == nil || !slices.Equal(m.LoRA.Running, run) || !slices.Equal(m.LoRA.Waiting, wait) || m.LoRA.Max != 4 {
			t.Fatalf("LoRA %+v, want running %q waiting %q max 4", m.LoRA, run, wait)
		}
		if m.Running != 12 || m.Waiting != 3 || m.KVCacheTokens != 27051*16 {
			t.Fatalf("running %v waiting %v cache %v", m.Running, m.Waiting, m.KVCacheTokens)
		}
	}
	// Payloads without LoRA serving have no such family and no signal.
	m, err := Parse(strings.NewReader(fixture(t, "vllm_v1.txt")), Auto)
	if err != nil || m.LoRA != nil {
		t.Fatalf("vllm_v1.txt: %v %+v", err, m.LoRA)
	}
}

// A current series that cannot be read whole makes the LoRA signal absent
// rather than partial; an old malformed series does not matter; LoRA info
// alone is no load signal.
func TestParseVLLMLoRAInfoBad(t *testing.T) {
	const load = "vllm:num_requests_running 3\nvllm:num_requests_waiting 1\n"
	series := func(maxLoRA, running, waiting string, at float64) string {
		return fmt.Sprintf("vllm:lora_requests_info{max_lora=%q,running_lora_adapters=%q,waiting_lora_adapters=%q} %g\n", maxLoRA, running, waiting, at)
	}
	many := make([]string, maxLoRAAdapters+1)
	for i := range many {
		many[i] = fmt.Sprintf("a%d", i)
	}
	cases := []struct {
		name, payload string
		ok            bool
		adapters      []string // running
		max           int
	}{
		{"empty lists", series("2", "", "", 10), true, nil, 2},
		{"spaces and repeats", series("2", "y, x,y", "z", 10), true, []string{"x", "y"}, 2},
		{"latest printed first", series("3", "y", "", 10) + series("3", "x", "", 5), true, []string{"y"}, 3},
		{"old series malformed", series("bad", "z", "", 5) + series("3", "x", "", 10), true, []string{"x"}, 3},
		{"current max_lora not a number", series("3", "x", "", 5) + series("four", "y", "", 10), false, nil, 0},
		{"negative max_lora", series("-1", "x", "", 10), false, nil, 0},
		{"max_lora 0: LoRA off", series("0", "", "", 10), false, nil, 0},
		{"no waiting label", "vllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"x\"} 10\n", false, nil, 0},
		{"too many adapters", series("4", strings.Join(many, ","), "", 10), false, nil, 0},
		{"name too long", series("4", strings.Repeat("n", maxLoRANameBytes+1), "", 10), false, nil, 0},
		{"NaN time", series("4", "x", "", 0) + "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"y\",waiting_lora_adapters=\"\"} NaN\n", true, []string{"x"}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(strings.NewReader(load+"# TYPE vllm:lora_requests_info gauge\n"+c.payload), VLLM)
			if err != nil {
				t.Fatal(err)
			}
			if (m.LoRA != nil) != c.ok || m.LoRA != nil && (!slices.Equal(m.LoRA.Running, c.adapters) || m.LoRA.Max != c.max) {
				t.Fatalf("LoRA %+v, want ok=%v %q %d", m.LoRA, c.ok, c.adapters, c.max)
			}
		})
	}
	if _, err := Parse(strings.NewReader(series("4", "x", "", 10)), VLLM); !errors.Is(err, ErrNoSignals) {
		t.Fatalf("LoRA info alone: %v, want ErrNoSignals", err)
	}
}
