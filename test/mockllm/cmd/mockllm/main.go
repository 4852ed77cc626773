// Command mockllm serves an OpenAI-compatible mock inference server (see
// package mockllm) for demos and benchmarks.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/infergate/infergate/test/gpumodel"
	"github.com/infergate/infergate/test/mockllm"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to serve on")
	name := flag.String("name", mockllm.DefaultName, "model name")
	ttft := flag.Duration("ttft", 0, "time to first token once a batch slot is held")
	tps := flag.Float64("tokens-per-s", 0, "generation rate per request; 0 is instant")
	gpus := flag.Int("gpus", mockllm.DefaultGPUs, "simulated GPUs")
	batch := flag.Int("batch", mockllm.DefaultBatch, "concurrent requests per GPU")
	queue := flag.Int("queue", mockllm.DefaultQueue, "requests that may wait for a slot")
	maxTokens := flag.Int("max-tokens", mockllm.DefaultMaxTokens, "completion length when a request sets none")
	omitUsage := flag.Bool("omit-usage", false, "leave usage out of responses")
	failStatus := flag.Int("fail-status", 0, "answer every request with this HTTP status")
	kvEvents := flag.String("kv-events", "", "publish KV-cache events (vLLM's wire format) on this tcp://host:port")
	kvBlockSize := flag.Int("kv-block-size", 16, "tokens per KV block")
	kvBlocks := flag.Int("kv-blocks", 4096, "prefix cache capacity in blocks")
	kvEncoding := flag.String("kv-encoding", "cl100k_base", "tokenizer of the prefix cache")
	kvSeed := flag.String("kv-hash-seed", "", "block hash seed (vLLM's PYTHONHASHSEED)")
	kvPrefill := flag.Duration("kv-prefill-per-block", 0, "prefill time of each prompt block not cached")
	control := flag.Bool("control", false, "serve POST /control/speed to change the simulated GPU speed")
	gpu := flag.String("gpu", "", "simulate this card's roofline (h100, a100, a10) instead of -ttft/-tokens-per-s/-gpus/-batch")
	loras := flag.String("lora-modules", "", "LoRA adapters served as model names, comma-separated (vLLM's --lora-modules); /metrics then has vllm:lora_requests_info")
	maxLoras := flag.Int("max-loras", 1, "adapters one batch may use (vLLM's --max-loras)")
	flag.Parse()
	var spec *gpumodel.Spec
	switch *gpu {
	case "":
	case "h100":
		spec = &gpumodel.H100
	case "a100":
		spec = &gpumodel.A100
	case "a10":
		spec = &gpumodel.A10
	default:
		fmt.Fprintln(os.Stderr, "mockllm: -gpu must be h100, a100 or a10")
		os.Exit(2)
	}

	cfg := mockllm.Config{Name: *name, TTFT: *ttft, TokensPerSecond: *tps, GPUs: *gpus, Batch: *batch,
		Queue: *queue, MaxTokens: *maxTokens, OmitUsage: *omitUsage, GPU: spec, MaxLoRAs: *maxLoras}
	if *loras != "" {
		cfg.LoRAs = strings.Split(*loras, ",")
	}
	s := mockllm.New(cfg)
	if *failStatus != 0 {
		s.SetFailure(mockllm.Failure{Status: *failStatus})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *control {
		s.EnableControl()
	}
	if *kvEvents != "" {
		if _, err := s.EnableKVEvents(ctx, mockllm.KVEventsConfig{Listen: *kvEvents, BlockSize: *kvBlockSize,
			Blocks: *kvBlocks, Encoding: *kvEncoding, HashSeed: *kvSeed, PrefillPerBlock: *kvPrefill}); err != nil {
			fmt.Fprintln(os.Stderr, "mockllm:", err)
			os.Exit(1)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err == nil {
		slog.Info("mockllm listening", "addr", ln.Addr().String(), "model", *name)
		err = mockllm.Serve(ctx, ln, s.Handler())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		os.Exit(1)
	}
}
