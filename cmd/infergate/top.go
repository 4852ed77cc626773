package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// top's bounds.
const (
	defaultTopInterval = 2 * time.Second
	minTopInterval     = 100 * time.Millisecond
	// topFetchTimeout keeps a stuck agent from freezing the screen.
	topFetchTimeout = 5 * time.Second
	// Terminal control sequences.
	ansiClear      = "\x1b[H\x1b[2J"
	ansiAltScreen  = "\x1b[?1049h"
	ansiMainScreen = "\x1b[?1049l"
	ansiHideCursor = "\x1b[?25l"
	ansiShowCursor = "\x1b[?25h"
	ansiBold       = "\x1b[1m"
	ansiReset      = "\x1b[0m"
	keyCtrlC       = 3
)

func newTopCmd(cfg *cliConfig) *cobra.Command {
	var interval time.Duration
	var iterations int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of backends (GPU load, weight, requests/s, tokens/s, TTFT) and drops",
		Long: `top refreshes a table of every backend: its GPU load report, configured and
effective weight, and the rates of requests, tokens, packets and new flows
computed from successive samples, with mean time to first token over the last
interval; below it, packet drops per second by reason. Press q to quit.

On a terminal it takes the screen until q (or Ctrl-C). Otherwise it prints
--iterations frames (default 1) and exits.`,
		Example: `  infergate top
  infergate top --interval 500ms
  infergate top --iterations 3 > frames.txt`,
		Args: usageArgs(cobra.NoArgs),
	}
	cmd.Flags().DurationVar(&interval, "interval", defaultTopInterval, "time between refreshes")
	cmd.Flags().IntVar(&iterations, "iterations", 0, "stop after this many frames (0: until q on a terminal, 1 otherwise)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if interval < minTopInterval {
			return withCode(exitUsage, fmt.Errorf("--interval must be at least %s", minTopInterval))
		}
		t := &topView{client: cfg.client(), interval: interval, out: cmd.OutOrStdout(), outFd: -1}
		return t.run(cmd.Context(), cmd.InOrStdin(), iterations)
	}
	return cmd
}

// topSample is one poll of the agent.
type topSample struct {
	at       time.Time
	backends []api.Backend
	stats    *api.Stats
	err      error
}

type topView struct {
	client   *api.Client
	interval time.Duration
	out      io.Writer
	width    int
	// outFd is the terminal's descriptor, to follow resizes; -1 otherwise.
	outFd int
	prev  *topSample
}

func (t *topView) fetch(ctx context.Context) topSample {
	ctx, cancel := context.WithTimeout(ctx, topFetchTimeout)
	defer cancel()
	s := topSample{at: time.Now()}
	s.backends, s.err = t.client.Backends(ctx)
	if s.err == nil {
		s.stats, s.err = t.client.Stats(ctx)
	}
	return s
}

func (t *topView) run(ctx context.Context, in io.Reader, iterations int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	first := t.fetch(ctx)
	if errors.Is(first.err, api.ErrUnavailable) {
		return withCode(exitUnavailable, first.err)
	}
	inFile, inOK := in.(*os.File)
	outFile, outOK := t.out.(*os.File)
	interactive := inOK && outOK && term.IsTerminal(int(inFile.Fd())) && term.IsTerminal(int(outFile.Fd()))
	if !interactive {
		if iterations <= 0 {
			iterations = 1
		}
		return t.loop(ctx, first, nil, iterations, "\n")
	}
	state, err := term.MakeRaw(int(inFile.Fd()))
	if err != nil {
		return fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	defer func() {
		fmt.Fprint(t.out, ansiShowCursor+ansiMainScreen)
		_ = term.Restore(int(inFile.Fd()), state)
	}()
	fmt.Fprint(t.out, ansiAltScreen+ansiHideCursor)
	t.outFd = int(outFile.Fd())
	quit := make(chan struct{})
	go func() {
		// Reads block until a key; the goroutine ends with the process.
		buf := make([]byte, 16)
		for {
			n, err := inFile.Read(buf)
			if err != nil {
				close(quit)
				return
			}
			for _, c := range buf[:n] {
				if c == 'q' || c == 'Q' || c == keyCtrlC {
					close(quit)
					return
				}
			}
		}
	}()
	return t.loop(ctx, first, quit, iterations, "\r\n")
}

// loop draws frames until quit closes or iterations frames are drawn.
func (t *topView) loop(ctx context.Context, s topSample, quit <-chan struct{}, iterations int, eol string) error {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for frame := 1; ; frame++ {
		if err := t.draw(s, eol, quit != nil); err != nil {
			return err
		}
		if iterations > 0 && frame >= iterations {
			return nil
		}
		select {
		case <-quit:
			return nil
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s = t.fetch(ctx)
	}
}

// rate is a per-second rate between two cumulative counters, or -1 when
// there is no earlier sample (or the counter went backwards: a restart).
func rate(prev, cur uint64, dt float64) float64 {
	if dt <= 0 || cur < prev {
		return -1
	}
	return float64(cur-prev) / dt
}

func fmtRate(r float64) string {
	switch {
	case r < 0:
		return "-"
	case r >= 1e6:
		return fmt.Sprintf("%.1fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	default:
		return fmt.Sprintf("%.1f", r)
	}
}

func backendKey(b api.Backend) string { return b.Pool + "/" + b.Name }

func (t *topView) draw(s topSample, eol string, screen bool) error {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	bold := func(s string) string {
		if screen {
			return ansiBold + s + ansiReset
		}
		return s
	}
	add("infergate top — %s — every %s — agent %s — press q to quit", s.at.UTC().Format("15:04:05"), t.interval, t.client.Socket())
	if s.err != nil {
		add("error: %v", s.err)
	}
	var dt float64
	prevB := map[string]api.Backend{}
	var prevStats *api.Stats
	if t.prev != nil && t.prev.err == nil {
		dt = s.at.Sub(t.prev.at).Seconds()
		for _, b := range t.prev.backends {
			prevB[backendKey(b)] = b
		}
		prevStats = t.prev.stats
	}
	add("")
	header := fmt.Sprintf("%-12s %-14s %-8s %-4s %9s %6s %5s %5s %5s %8s %8s %8s %9s %8s",
		"POOL", "BACKEND", "STATE", "UP", "WEIGHT", "KV", "GPU", "RUN", "WAIT", "REQ/S", "TOK/S", "TTFT", "PKT/S", "FLOWS/S")
	add("%s", bold(header))
	bs := append([]api.Backend(nil), s.backends...)
	sort.Slice(bs, func(i, j int) bool { return backendKey(bs[i]) < backendKey(bs[j]) })
	for _, b := range bs {
		kv, gpu, run, wait := "-", "-", "-", "-"
		if l := b.Load; l != nil {
			kv = fmt.Sprintf("%.0f%%", l.KVCacheUsage*100)
			if l.Stale {
				kv += "?"
			}
			gpu = fmt.Sprintf("%.0f%%", l.GPUUtil*100)
			run, wait = fmt.Sprintf("%.0f", l.Running), fmt.Sprintf("%.0f", l.Waiting)
		}
		reqs, toks, ttft := "-", "-", "-"
		pkts, flows := "-", "-"
		if p, ok := prevB[backendKey(b)]; ok {
			pkts = fmtRate(rate(p.Packets, b.Packets, dt))
			flows = fmtRate(rate(p.NewFlows, b.NewFlows, dt))
			if b.L7 != nil && p.L7 != nil {
				reqs = fmtRate(rate(p.L7.Requests, b.L7.Requests, dt))
				toks = fmtRate(rate(p.L7.PromptTokens+p.L7.CompletionTokens, b.L7.PromptTokens+b.L7.CompletionTokens, dt))
				if n := b.L7.TTFTCount - p.L7.TTFTCount; b.L7.TTFTCount > p.L7.TTFTCount && n > 0 {
					mean := (b.L7.TTFTSecondsSum - p.L7.TTFTSecondsSum) / float64(n)
					ttft = time.Duration(mean * float64(time.Second)).Round(time.Millisecond).String()
				}
			}
		}
		add("%-12s %-14s %-8s %-4s %9s %6s %5s %5s %5s %8s %8s %8s %9s %8s",
			clip(b.Pool, 12), clip(b.Name, 14), b.State, yesNo(b.Healthy), weightString(b), kv, gpu, run, wait, reqs, toks, ttft, pkts, flows)
	}
	if len(bs) == 0 && s.err == nil {
		add("(no backends: is a policy applied?)")
	}
	if s.stats != nil {
		add("")
		add("%s", bold(fmt.Sprintf("%-28s %10s %14s", "DROP REASON", "PER SEC", "TOTAL")))
		for _, k := range sortedKeys(s.stats.Drops) {
			r := "-"
			if prevStats != nil {
				r = fmtRate(rate(prevStats.Drops[k], s.stats.Drops[k], dt))
			}
			add("%-28s %10s %14d", clip(k, 28), r, s.stats.Drops[k])
		}
		if len(s.stats.Drops) == 0 {
			add("(no drops)")
		}
	}
	if s.err == nil {
		t.prev = &s
	}
	var b strings.Builder
	if screen {
		b.WriteString(ansiClear)
	}
	if t.outFd >= 0 {
		// Asked every frame so a resized window is followed.
		if w, _, err := term.GetSize(t.outFd); err == nil {
			t.width = w
		}
	}
	for _, l := range lines {
		if t.width > 0 {
			l = clipVisible(l, t.width)
		}
		b.WriteString(l)
		b.WriteString(eol)
	}
	if !screen {
		b.WriteString(eol)
	}
	_, err := io.WriteString(t.out, b.String())
	return err
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// clipVisible cuts a line to the terminal width, ignoring escape sequences.
func clipVisible(s string, width int) string {
	visible, inEsc := 0, false
	for i, r := range s {
		switch {
		case r == '\x1b':
			inEsc = true
		case inEsc:
			if r >= '@' && r <= '~' && r != '[' {
				inEsc = false
			}
		default:
			visible++
			if visible > width {
				return s[:i] + ansiReset
			}
		}
	}
	return s
}
