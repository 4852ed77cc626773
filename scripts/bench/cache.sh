#!/usr/bin/env bash
# Response cache benchmark: one deterministic chat request (temperature 0)
# under the same wrk load, in one run:
#   infergate-hit   answered from infergate's response cache (memory);
#   infergate-miss  the same request through infergate with the cache
#                   bypassed (X-Infergate-Cache: bypass): auth, counting,
#                   limits and the upstream call to the mock;
#   infergate-nocache  the same through a second infergate with no cache
#                   configured (what the cache costs a request it misses);
#   nginx-cache     nginx's proxy_cache answering the same request
#                   (proxy_cache_methods POST, the key over the body);
#   mock            the mock inference server alone.
# The mock generates instantly (TTFT=0 by default), so the miss path shows
# the gateway's own cost, not a GPU's; set MOCK_TTFT=200ms to see a hit
# against a slow upstream.
#
#   DURATION=10 ROUNDS=3 scripts/bench/cache.sh
#
# Environment: DURATION (seconds per run, 10), CONNS (64), THREADS (2),
# ROUNDS (3; each figure is the median over the rounds, the systems
# measured in turn), WARMUP (1 s before each run), MAX_TOKENS (16),
# MOCK_TTFT (0), BASE_PORT (18200).
# Prints "system=<name> rps=<n> p50_ms=<x> p99_ms=<y>" (rounds on stderr,
# medians on stdout).
set -euo pipefail

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
MAX_TOKENS=${MAX_TOKENS:-16}
MOCK_TTFT=${MOCK_TTFT:-0}
BASE_PORT=${BASE_PORT:-18200}
MOCK_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
GW_PORT=$((BASE_PORT + 2))
GW_PLAIN_PORT=$((BASE_PORT + 3))
PATH_V1=/v1/chat/completions
KEY=sk-cache-bench-0123456789

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"
bench_setup infergate-cachebench

bench_need
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building"
export GOFLAGS=${GOFLAGS:--mod=mod}
(cd "$ROOT" && go build -o "$TMP/infergate" ./cmd/infergate && go build -o "$TMP/mockllm" ./test/mockllm/cmd/mockllm)

printf '{"model":"bench-model","temperature":0,"max_tokens":%d,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise what a response cache saves."}]}' \
	"$MAX_TOKENS" >"$TMP/body.json"
bench_post_lua "$TMP/hit.lua" "$TMP/body.json" "$KEY"
bench_post_lua "$TMP/miss.lua" "$TMP/body.json" "$KEY"
echo 'wrk.headers["X-Infergate-Cache"] = "bypass"' >>"$TMP/miss.lua"

HASH=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
cat >"$TMP/policy.yaml" <<YAML
apiVersion: infergate.dev/v1alpha1
kind: Policy
metadata:
  name: cache-bench
spec:
  pools:
    - name: mock
      backends:
        - name: m0
          address: 127.0.0.1
          port: $MOCK_PORT
  gateway:
    listen: 127.0.0.1:$GW_PORT
    tenants:
      - name: bench
    keys:
      - name: bench-key
        tenant: bench
        hash: sha256:$HASH
    models:
      - name: bench-model
        encoding: o200k_base
        price:
          inputPerMTok: 1
          outputPerMTok: 2
        routes:
          - pool: mock
    cache:
      memoryBytes: 67108864
      ttl: 10m
YAML
# The same gateway without the cache block.
sed -e '/^    cache:/,$d' -e "s/127.0.0.1:$GW_PORT/127.0.0.1:$GW_PLAIN_PORT/" "$TMP/policy.yaml" >"$TMP/plain.yaml"

# nginx's proxy_cache in front of the same mock: POST cached, the key the
# URI, the credential and the body (read into memory, so $request_body is
# set), the upstream's headers not allowed to refuse caching.
mkdir -p "$TMP/nginx/cache"
# As root nginx's workers would run as nobody, who cannot write the
# cache under the run's private folder: they run as the caller.
NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user $(id -un) $(id -gn);"
cat >"$TMP/nginx/nginx.conf" <<NGINX
$NGINX_USER
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/body;
	proxy_temp_path $TMP/nginx/proxy;
	fastcgi_temp_path $TMP/nginx/fastcgi;
	uwsgi_temp_path $TMP/nginx/uwsgi;
	scgi_temp_path $TMP/nginx/scgi;
	client_body_buffer_size 64k;
	client_body_in_single_buffer on;
	proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=llm:16m max_size=64m inactive=10m use_temp_path=off;
	upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 256; }
	server {
		listen 127.0.0.1:$NGINX_PORT;
		location / {
			proxy_pass http://mock;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache llm;
			proxy_cache_methods POST;
			proxy_cache_key "\$request_uri|\$http_authorization|\$request_body";
			proxy_cache_valid 200 10m;
			proxy_ignore_headers Cache-Control Expires Set-Cookie;
			add_header X-Cache \$upstream_cache_status;
		}
	}
}
NGINX

"$TMP/mockllm" -listen "127.0.0.1:$MOCK_PORT" -batch 8192 -queue 8192 -ttft "$MOCK_TTFT" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
"$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
"$TMP/infergate" gateway -f "$TMP/policy.yaml" >"$TMP/gw.log" 2>&1 &
PIDS+=($!)
"$TMP/infergate" gateway -f "$TMP/plain.yaml" >"$TMP/gw-plain.log" 2>&1 &
PIDS+=($!)
for p in $MOCK_PORT $NGINX_PORT $GW_PORT $GW_PLAIN_PORT; do bench_wait_port "$p"; done

post() { # port [header]: prints the status and the cache header
	curl -s -o /dev/null -D - -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' ${2:+-H "$2"} \
		--data-binary "@$TMP/body.json" "http://127.0.0.1:$1$PATH_V1" | tr -d '\r' |
		awk 'NR == 1 { s = $2 } tolower($1) ~ /^x-(infergate-)?cache:$/ { c = $2 } END { print s, c }'
}
# Fill both caches, then check that each answers as the run assumes.
post "$GW_PORT" >/dev/null
post "$NGINX_PORT" >/dev/null
check() {
	local got
	got=$(post "$1" "${3:-}")
	[ "$got" = "$2" ] || { echo "port $1 answered '$got', want '$2'" >&2; cat "$TMP"/*.log "$TMP"/nginx/error.log >&2 2>/dev/null; exit 1; }
}
check "$GW_PORT" "200 hit-exact"
check "$GW_PORT" "200 bypass" "X-Infergate-Cache: bypass"
check "$NGINX_PORT" "200 HIT"
check "$GW_PLAIN_PORT" "200 "
check "$MOCK_PORT" "200 "

to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "%s", v }'
}

run_wrk() {
	local name=$1 port=$2 script=$3 out rps p50 p99 errs
	wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$script" "http://127.0.0.1:$port$PATH_V1" >/dev/null
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "http://127.0.0.1:$port$PATH_V1")
	rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
	errs=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
	echo "system=$name rps=$rps p50_ms=$p50 p99_ms=$p99${errs:+ non2xx=$errs}"
}

SYSTEMS=(infergate-hit infergate-miss infergate-nocache nginx-cache mock)
measure() {
	case $1 in
	infergate-hit) run_wrk infergate-hit "$GW_PORT" "$TMP/hit.lua" ;;
	infergate-miss) run_wrk infergate-miss "$GW_PORT" "$TMP/miss.lua" ;;
	infergate-nocache) run_wrk infergate-nocache "$GW_PLAIN_PORT" "$TMP/hit.lua" ;;
	nginx-cache) run_wrk nginx-cache "$NGINX_PORT" "$TMP/hit.lua" ;;
	mock) run_wrk mock "$MOCK_PORT" "$TMP/hit.lua" ;;
	esac
}

log "duration=${DURATION}s conns=$CONNS threads=$THREADS cpus=$(nproc) rounds=$ROUNDS max_tokens=$MAX_TOKENS mock_ttft=$MOCK_TTFT"
: >"$TMP/wrk.txt"
for ((r = 0; r < ROUNDS; r++)); do
	n=${#SYSTEMS[@]}
	for ((i = 0; i < n; i++)); do
		line=$(measure "${SYSTEMS[$(((i + r) % n))]}")
		echo "round=$((r + 1)) $line" >&2
		echo "$line" >>"$TMP/wrk.txt"
	done
done
# The medians, in the order above.
for s in "${SYSTEMS[@]}"; do
	grep "^system=$s " "$TMP/wrk.txt" | awk -v s="$s" '
	{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2] + 0; if (NR == 1) keys[++nk] = kv[1] } }
	END {
		line = "system=" s
		for (k = 1; k <= nk; k++) {
			n = 0; for (i = 1; i <= NR; i++) a[++n] = v[keys[k], i]
			for (i = 2; i <= n; i++) { x = a[i]; j = i - 1; while (j >= 1 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
			line = line " " keys[k] "=" ((n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
		}
		print line
	}'
done
