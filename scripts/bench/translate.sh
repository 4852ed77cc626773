#!/usr/bin/env bash
# Provider translation benchmark: what translating to Anthropic, Bedrock and
# Gemini adds beside the OpenAI-to-OpenAI path, in the same run, through the
# whole gateway (auth, counting, limits) over loopback, with 4 KB prompts:
# requests/s of whole answers (parallel clients), and for 64-chunk streams
# the time to the first content chunk (ttft-ns) and per chunk after it
# (ns/chunk). Providers answer pre-rendered bodies in their own wire formats
# (l7/gateway/translate_bench_test.go), so only the gateway's work differs.
#
#   COUNT=5 BENCHTIME=300x scripts/bench/translate.sh
#
# Prints the go test benchmark lines (COUNT rounds, kinds measured in turn
# within each round); compare kinds within one run only.
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-300x}
CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations} go test -run '^$' -bench '^BenchmarkTranslation$' \
  -benchtime "$BENCHTIME" -count "$COUNT" ./l7/gateway | grep -E '^(Benchmark|goos|cpu|ok|FAIL)'
