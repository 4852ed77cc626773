// Command loadgen sends POST requests at a fixed rate (open loop) and
// reports throughput and latency percentiles, measured from each request's
// scheduled send time so a stalled server cannot hide its queueing
// (no coordinated omission). With -rate 0 it runs closed loop: -c workers
// sending back to back, like wrk.
//
// Output: one line, "rps=<n> p50_ms=<x> p99_ms=<y> errors=<n> sent=<n>".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds.
const (
	maxDuration   = 10 * time.Minute
	maxRate       = 200_000
	maxWorkers    = 4096
	maxBodyBytes  = 64 << 20
	requestTimout = 30 * time.Second
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := flag.String("url", "", "target URL")
	bodyFile := flag.String("body", "", "file holding the request body")
	rate := flag.Int("rate", 0, "requests per second (0: closed loop)")
	workers := flag.Int("c", 64, "concurrent connections")
	duration := flag.Duration("d", 10*time.Second, "how long to send")
	var headers headerFlags
	flag.Var(&headers, "H", "header \"Name: value\" (repeatable)")
	flag.Parse()
	if err := run(*url, *bodyFile, *rate, *workers, *duration, headers); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(url, bodyFile string, rate, workers int, duration time.Duration, headers []string) error {
	switch {
	case url == "":
		return fmt.Errorf("-url is required")
	case duration <= 0 || duration > maxDuration:
		return fmt.Errorf("-d must be in (0, %v]", maxDuration)
	case rate < 0 || rate > maxRate:
		return fmt.Errorf("-rate must be in [0, %d]", maxRate)
	case workers < 1 || workers > maxWorkers:
		return fmt.Errorf("-c must be in [1, %d]", maxWorkers)
	}
	var body []byte
	if bodyFile != "" {
		f, err := os.Open(bodyFile)
		if err != nil {
			return err
		}
		body, err = io.ReadAll(io.LimitReader(f, maxBodyBytes))
		f.Close()
		if err != nil {
			return err
		}
	}
	hdr := http.Header{"Content-Type": {"application/json"}}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("header %q is not Name: value", h)
		}
		hdr.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	client := &http.Client{Transport: tr, Timeout: requestTimout}

	var errors, sent atomic.Int64
	lat := make([][]time.Duration, workers)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	// ticks carries scheduled send times in open-loop mode.
	var ticks chan time.Time
	if rate > 0 {
		ticks = make(chan time.Time, maxRate)
		go func() {
			defer close(ticks)
			start := time.Now()
			interval := time.Second / time.Duration(rate)
			for i := 0; ; i++ {
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				if ctx.Err() != nil {
					return
				}
				select {
				case ticks <- at:
				default:
					errors.Add(1) // generator overrun: count, don't block
				}
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var at time.Time
				if ticks != nil {
					var ok bool
					if at, ok = <-ticks; !ok {
						return
					}
				} else {
					if ctx.Err() != nil {
						return
					}
					at = time.Now()
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header = hdr.Clone()
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					errors.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errors.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(at))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	fmt.Printf("rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d sent=%d\n", float64(len(all))/elapsed.Seconds(), pct(0.50), pct(0.99), errors.Load(), sent.Load())
	return nil
}
