#!/usr/bin/env bash
# What inbound translation (Anthropic Messages, OpenAI Responses) adds
# beside the OpenAI chat path, in the same run: the Go benchmarks of the
# whole gateway over loopback against the mock (requests/s at 4 KB
# prompts; one stream at a time: time to first byte and per streamed
# chunk of a 64-token stream), and of the translators alone (a 4 KB
# request; one streamed chunk) beside the gateway's own chat parse.
# The API benchmarks alternate chat, messages and responses COUNT times,
# so a neighbour's burst on a shared machine falls on all of them; compare
# ratios within one run, not absolute figures across machines.
#
#   COUNT=3 BENCHTIME=2s scripts/bench/inbound.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-3}
BENCHTIME=${BENCHTIME:-1s}
export GOFLAGS=${GOFLAGS:--mod=mod} CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}
go test -run '^$' -bench 'BenchmarkInbound' -benchmem -count "$COUNT" -benchtime "$BENCHTIME" ./l7/gateway/
go test -run '^$' -bench 'BenchmarkToChat4KB|BenchmarkStreamChunk' -benchmem -count "$COUNT" -benchtime "$BENCHTIME" ./l7/translate/...
