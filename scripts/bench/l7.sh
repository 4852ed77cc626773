#!/usr/bin/env bash
# L7 gateway benchmark: the same wrk load against the same mock inference
# server, directly and through nginx, HAProxy and infergate (auth, token
# counting, inspection and limits all on); then the same at a fixed rate
# with an open-loop load generator; then infergate with 100,000 API keys
# across 10,000 tenants loaded.
#
#   DURATION=10 BODY_BYTES=68 scripts/bench/l7.sh
#
# Environment: DURATION (seconds per run, default 10), BODY_BYTES (request
# body size, default 68), RATE (fixed rate, default 2000), CONNS (wrk
# connections, default 64), THREADS (wrk threads, default 2), LARGE_TENANTS
# (10000), LARGE_KEYS (100000), BASE_PORT (18100), ROUNDS (3: the systems
# are measured in turn ROUNDS times and each figure is the median over the
# rounds, so a burst of load from elsewhere on the machine hits one round of
# one system rather than deciding the comparison), WARMUP (1: seconds of
# the same load, not measured, right before each measured run).
# Prints "system=<name> rps=<n> p50_ms=<x> p99_ms=<y>" lines (per round on
# stderr, medians on stdout).
set -euo pipefail

DURATION=${DURATION:-10}
BODY_BYTES=${BODY_BYTES:-68}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
LARGE_TENANTS=${LARGE_TENANTS:-10000}
LARGE_KEYS=${LARGE_KEYS:-100000}
BASE_PORT=${BASE_PORT:-18100}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
MOCK_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
HAPROXY_PORT=$((BASE_PORT + 2))
GW_PORT=$((BASE_PORT + 3))
GW_LARGE_PORT=$((BASE_PORT + 4))
GOPROXY_PORT=$((BASE_PORT + 5))
PATH_V1=/v1/chat/completions

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"
bench_setup infergate-l7bench

bench_need wrk nginx haproxy
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

log "building"
export GOFLAGS=${GOFLAGS:--mod=mod}
(cd "$ROOT" && go build -o "$TMP/infergate" ./cmd/infergate && go build -o "$TMP/mockllm" ./test/mockllm/cmd/mockllm &&
	go build -o "$TMP/loadgen" ./test/loadgen && go build -o "$TMP/benchgen" ./test/loadgen/benchgen &&
	go build -o "$TMP/goproxy" ./test/loadgen/goproxy)

"$TMP/benchgen" -out "$TMP" -body-bytes "$BODY_BYTES" -upstream "127.0.0.1:$MOCK_PORT" -listen "127.0.0.1:$GW_PORT" -name small
"$TMP/benchgen" -out "$TMP" -body-bytes "$BODY_BYTES" -upstream "127.0.0.1:$MOCK_PORT" -listen "127.0.0.1:$GW_LARGE_PORT" \
	-name large -tenants "$LARGE_TENANTS" -keys "$LARGE_KEYS"
KEY=sk-bench-0

bench_post_lua "$TMP/post.lua" "$TMP/body.json" "$KEY"

bench_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$MOCK_PORT"

cat >"$TMP/haproxy.cfg" <<HAPROXY
global
	maxconn 8192
	nbthread $(nproc)
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
frontend fe
	bind 127.0.0.1:$HAPROXY_PORT
	default_backend be
backend be
	http-reuse always
	server mock 127.0.0.1:$MOCK_PORT
HAPROXY


"$TMP/mockllm" -listen "127.0.0.1:$MOCK_PORT" -batch 8192 -queue 8192 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
"$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
"$HAPROXY" -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
# A plain Go reverse proxy shows what net/http itself costs.
"$TMP/goproxy" -listen "127.0.0.1:$GOPROXY_PORT" -upstream "http://127.0.0.1:$MOCK_PORT" >"$TMP/goproxy.log" 2>&1 &
PIDS+=($!)
"$TMP/infergate" gateway --config "$TMP/small.yaml" >"$TMP/gw.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
"$TMP/infergate" gateway --config "$TMP/large.yaml" --keys-file "$TMP/large-keys.txt" >"$TMP/gw-large.log" 2>&1 &
GW_LARGE_PID=$!
PIDS+=($GW_LARGE_PID)
for p in $MOCK_PORT $NGINX_PORT $HAPROXY_PORT $GOPROXY_PORT $GW_PORT $GW_LARGE_PORT; do bench_wait_port "$p"; done

# Every system must answer 200 before it is measured.
for p in $MOCK_PORT $NGINX_PORT $HAPROXY_PORT $GOPROXY_PORT $GW_PORT $GW_LARGE_PORT; do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		--data-binary "@$TMP/body.json" "http://127.0.0.1:$p$PATH_V1")
	[ "$code" = 200 ] || { echo "port $p answered $code" >&2; cat "$TMP"/*.log >&2; exit 1; }
done

# to_ms converts wrk's "1.23ms" / "850.00us" / "1.02s" to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "%s", v }'
}

peak_rss_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

run_wrk() {
	local name=$1 port=$2 extra=${3:-}
	local out
	# The warm-up absorbs what the previous system left running (a Go
	# process's scavenger, a backlog of closing connections), which
	# otherwise lands on whichever system is measured next.
	wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$TMP/post.lua" "http://127.0.0.1:$port$PATH_V1" >/dev/null
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$port$PATH_V1")
	local rps p50 p99 errs
	rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
	errs=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
	echo "system=$name rps=$rps p50_ms=$p50 p99_ms=$p99${errs:+ non2xx=$errs}$extra"
}

run_rate() {
	local name=$1 port=$2 extra=${3:-}
	local out
	"$TMP/loadgen" -url "http://127.0.0.1:$port$PATH_V1" -body "$TMP/body.json" -rate "$RATE" -c "$CONNS" \
		-d "${WARMUP}s" -H "Authorization: Bearer $KEY" >/dev/null
	out=$("$TMP/loadgen" -url "http://127.0.0.1:$port$PATH_V1" -body "$TMP/body.json" -rate "$RATE" -c "$CONNS" \
		-d "${DURATION}s" -H "Authorization: Bearer $KEY")
	# loadgen prints: rps=… p50_ms=… p99_ms=… errors=… sent=…
	echo "system=$name rate=$RATE $out$extra"
}

# median prints, for each system in order, the median of every numeric
# key=value field over the rounds recorded in file $1.
median() {
	awk '
	{
		sys = ""; extra = ""
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "system") { sys = kv[2]; if (!(sys in seen)) { seen[sys] = 1; order[++n] = sys } ; continue }
			if (kv[1] == "rate") { rate[sys] = kv[2]; continue }
			key = kv[1]
			if (!((sys, key) in nk)) { keys[sys] = keys[sys] " " key }
			nk[sys, key]++
			vals[sys, key, nk[sys, key]] = kv[2] + 0
		}
	}
	END {
		for (s = 1; s <= n; s++) {
			sys = order[s]; line = "system=" sys
			if (sys in rate) line = line " rate=" rate[sys]
			m = split(substr(keys[sys], 2), ks, " ")
			for (k = 1; k <= m; k++) {
				key = ks[k]; c = nk[sys, key]
				for (i = 1; i <= c; i++) v[i] = vals[sys, key, i]
				for (i = 2; i <= c; i++) { x = v[i]; j = i - 1; while (j >= 1 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
				med = (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
				if (key == "rss_mb") { med = v[c] }   # peak, not median
				line = line " " key "=" med
			}
			print line
		}
	}' "$1"
}

log "body_bytes=$BODY_BYTES duration=${DURATION}s conns=$CONNS threads=$THREADS cpus=$(nproc) rounds=$ROUNDS"
: >"$TMP/wrk.txt"
: >"$TMP/rate.txt"
# Each round starts the list two systems further on, so that no system is
# always measured right after the same neighbour (the order's effect, if
# any, then moves between systems instead of deciding one system's median).
SYSTEMS=(mock nginx haproxy go-reverseproxy infergate infergate-large)
measure() {
	local fn=$1 name=$2
	case $name in
	mock) $fn mock "$MOCK_PORT" ;;
	nginx) $fn nginx "$NGINX_PORT" ;;
	haproxy) $fn haproxy "$HAPROXY_PORT" ;;
	go-reverseproxy) $fn go-reverseproxy "$GOPROXY_PORT" ;;
	infergate) $fn infergate "$GW_PORT" " rss_mb=$(peak_rss_mb "$GW_PID")" ;;
	infergate-large) $fn infergate-large "$GW_LARGE_PORT" " rss_mb=$(peak_rss_mb "$GW_LARGE_PID")" ;;
	esac
}
rotated() {
	local off=$1 n=${#SYSTEMS[@]} i
	for ((i = 0; i < n; i++)); do echo "${SYSTEMS[$(((i + off) % n))]}"; done
}
for round in $(seq 1 "$ROUNDS"); do
	offset=$((2 * (round - 1)))
	log "round $round: max throughput (wrk)"
	for name in $(rotated "$offset"); do measure run_wrk "$name"; done | tee -a "$TMP/wrk.txt" >&2
	log "round $round: fixed rate $RATE req/s (open loop, latency from scheduled send time)"
	for name in $(rotated "$offset"); do measure run_rate "$name"; done | tee -a "$TMP/rate.txt" >&2
done
log "medians over $ROUNDS rounds (rss_mb: peak)"
median "$TMP/wrk.txt"
median "$TMP/rate.txt"
