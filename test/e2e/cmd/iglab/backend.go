package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/infergate/infergate/test/e2e/lab"
	"github.com/infergate/infergate/test/mockllm"
)

func runBackend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	listen := fs.String("listen", fmt.Sprintf(":%d", lab.ServicePort), "address to serve on")
	host := fs.String("host", "", "this GPU host's name, sent in "+lab.BackendHeader)
	ttft := fs.Duration("ttft", 0, "time to first token once a batch slot is held")
	tps := fs.Float64("tokens-per-s", 0, "generation rate per request; 0 is instant")
	batch := fs.Int("batch", 0, "concurrent requests (0: mockllm default)")
	control := fs.Bool("control", false, "serve POST /control/speed (the simulated GPU's speed)")
	kvEvents := fs.String("kv-events", "", "publish KV-cache events on tcp://host:port")
	kvBlocks := fs.Int("kv-blocks", 0, "prefix cache capacity in blocks (0: mockllm default)")
	kvPrefill := fs.Duration("kv-prefill-per-block", 0, "prefill time of each prompt block not cached")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *host == "" {
		h, _ := os.Hostname()
		*host = h
	}
	m := mockllm.New(mockllm.Config{TTFT: *ttft, TokensPerSecond: *tps, Batch: *batch})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *control {
		m.EnableControl()
	}
	if *kvEvents != "" {
		if _, err := m.EnableKVEvents(ctx, mockllm.KVEventsConfig{Listen: *kvEvents, Blocks: *kvBlocks, PrefillPerBlock: *kvPrefill}); err != nil {
			return err
		}
	}
	inner := m.Handler()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(lab.BackendHeader, *host)
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			w.Header().Set(lab.LocalAddrHeader, a.String())
		}
		w.Header().Set(lab.RemoteAddrHeader, r.RemoteAddr)
		inner.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	return mockllm.Serve(ctx, ln, h)
}
