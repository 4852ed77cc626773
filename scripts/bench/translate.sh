#!/usr/bin/env bash
# Provider translation benchmark: what translating to Anthropic, Bedrock and
# Gemini adds beside the OpenAI-to-OpenAI path, in the same run, through the
# whole gateway (auth, counting, limits) over loopback, with 4 KB prompts:
# requests/s of whole answers (parallel clients), and for 64-chunk streams
# the time to the first content chunk (ttft-ns) and per chunk after it
# (ns/chunk). Providers answer pre-rendered bodies in their own wire formats
# (l7/gateway/translate_bench_test.go), so only the gateway's work differs.
#
#   ROUNDS=5 BENCHTIME=300x scripts/bench/translate.sh
#
# Each round measures every kind in turn (rounds interleave, so load that
# comes and goes touches all kinds alike); it prints every line, then per
# benchmark the median over the rounds of each figure. Compare kinds within
# one run only.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-300x}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$ROUNDS"); do
  CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations} go test -run '^$' -bench '^BenchmarkTranslation$' \
    -benchtime "$BENCHTIME" -count 1 ./l7/gateway | grep -E '^Benchmark' | tee -a "$out"
done
echo "medians over $ROUNDS rounds:"
awk '{
  name=$1; for (i=3; i<NF; i+=2) { key=name" "$(i+1); vals[key]=vals[key]" "$i; if (!(key in seen)) { seen[key]=1; order[++n]=key } }
} END {
  for (k=1; k<=n; k++) { key=order[k]; m=split(substr(vals[key],2), a, " ");
    for (i=1;i<=m;i++) for (j=i+1;j<=m;j++) if (a[j]+0<a[i]+0) { t=a[i]; a[i]=a[j]; a[j]=t }
    printf "%s median=%s\n", key, a[int((m+1)/2)] }
}' "$out"
