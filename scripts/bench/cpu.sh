#!/usr/bin/env bash
# CPU per request: the same wrk load against the same mock, through nginx and
# through one or more infergate binaries, alternated ROUNDS times; each
# proxy's CPU time over the measured run divided by the requests wrk
# completed. Less at the mercy of a noisy machine than l7.sh's req/s
# (a neighbour's burst slows every process alike), and the figure to watch
# when comparing an old and a new gateway binary.
#
#   GW="old=/tmp/old/infergate new=bin/infergate" BODY_BYTES=68 scripts/bench/cpu.sh
#
# Environment: GW (name=binary pairs, default "infergate=<built from this
# tree>"), BODY_BYTES (68), DURATION (5 s), ROUNDS (5), CONNS (64),
# THREADS (2), BASE_PORT (18200), NGINX (1: include nginx), TOGETHER (0;
# 1: the gateways are loaded at the same time, each by its own wrk with
# CONNS/2 connections and one thread, so that a slow spell of the machine
# hits all of them alike: the way to compare two builds on a noisy VM;
# nginx is then left out).
# Prints "system=<name> round=<i> rps=<n> cpu_us=<x> user_us=<u> sys_us=<s>"
# per run on stderr and the medians per system on stdout (cpu_us: the
# proxy's CPU time per request in microseconds, user and system, softirq
# work not included; user_us and sys_us: the same split into user and
# kernel time, from clock ticks, so each is good to about 10 ms over the
# run; paired_delta_us, paired_user_us, paired_sys_us: a later gateway's
# figure less the first gateway's, round by round, median). The split
# says whether a difference between two builds is in their own code or
# in the system calls they make.
set -euo pipefail

BODY_BYTES=${BODY_BYTES:-68}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-18200}
WITH_NGINX=${NGINX:-1}
PATH_V1=/v1/chat/completions
MOCK_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"
bench_setup infergate-cpubench

bench_need wrk nginx
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)

export GOFLAGS=${GOFLAGS:--mod=mod}
(cd "$ROOT" && go build -o "$TMP/mockllm" ./test/mockllm/cmd/mockllm && go build -o "$TMP/benchgen" ./test/loadgen/benchgen)
if [ -z "${GW:-}" ]; then
	(cd "$ROOT" && go build -o "$TMP/infergate" ./cmd/infergate)
	GW="infergate=$TMP/infergate"
fi


"$TMP/mockllm" -listen "127.0.0.1:$MOCK_PORT" -batch 8192 -queue 8192 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)

NAMES=()
declare -A PORT PID
port=$((BASE_PORT + 2))
for pair in $GW; do
	name=${pair%%=*} bin=${pair#*=}
	"$TMP/benchgen" -out "$TMP" -body-bytes "$BODY_BYTES" -upstream "127.0.0.1:$MOCK_PORT" -listen "127.0.0.1:$port" -name "$name"
	"$bin" gateway --config "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!
	PIDS+=($!)
	PORT[$name]=$port
	NAMES+=("$name")
	port=$((port + 1))
done
if [ "$WITH_NGINX" = 1 ]; then
	bench_nginx_conf "$TMP/nginx" "$NGINX_PORT" "$MOCK_PORT"
	"$NGINX_BIN" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
	PID[nginx]=$!
	PIDS+=($!)
	PORT[nginx]=$NGINX_PORT
	NAMES=(nginx "${NAMES[@]}")
fi
bench_wait_port "$MOCK_PORT"
for n in "${NAMES[@]}"; do bench_wait_port "${PORT[$n]}"; done

bench_post_lua "$TMP/post.lua" "$TMP/body.json" sk-bench-0

# cpu_ns prints the CPU time in nanoseconds that a process and its children
# (nginx's workers) have run, summed over their threads (schedstat is exact
# where /proc/PID/stat counts clock ticks).
cpu_ns() {
	local p pids
	pids="$1 $(pgrep -P "$1" | tr '\n' ' ' || true)"
	for p in $pids; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# cpu_ticks prints the user and system clock ticks of a process and its
# children, summed over their threads (fields 14 and 15 of stat; the
# command name in field 2 has no spaces for these processes).
cpu_ticks() {
	local p pids
	pids="$1 $(pgrep -P "$1" | tr '\n' ' ' || true)"
	for p in $pids; do cat /proc/"$p"/task/*/stat 2>/dev/null; done | awk '{ u += $14; s += $15 } END { printf "%d %d\n", u, s }'
}
TICK_NS=$((1000000000 / $(getconf CLK_TCK)))

# record appends the figures of system $1 in round $2 to runs.txt: wrk's
# output $3, the system's CPU time $4 (cpu_ns) and its user and system
# ticks $5 (cpu_ticks) from before the run.
record() {
	local n=$1 r=$2 out=$3 c0=$4 t0=$5 c1 t1 reqs non2xx
	c1=$(cpu_ns "${PID[$n]}")
	t1=$(cpu_ticks "${PID[$n]}")
	reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
	non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
	[ -z "$non2xx" ] || { echo "$n answered $non2xx non-2xx responses" >&2; exit 1; }
	awk -v n="$n" -v r="$r" -v q="$reqs" -v d="$DURATION" -v c="$((c1 - c0))" -v t0="$t0" -v t1="$t1" -v tick="$TICK_NS" 'BEGIN {
		split(t0, a, " "); split(t1, b, " ")
		printf "system=%s round=%d rps=%.0f cpu_us=%.2f user_us=%.2f sys_us=%.2f\n", n, r, q / d, c / 1000 / q,
			(b[1] - a[1]) * tick / 1000 / q, (b[2] - a[2]) * tick / 1000 / q
	}' | tee -a "$TMP/runs.txt" >&2
}

log "body_bytes=$BODY_BYTES duration=${DURATION}s conns=$CONNS rounds=$ROUNDS systems=${NAMES[*]} together=${TOGETHER:-0}"
: >"$TMP/runs.txt"
if [ "${TOGETHER:-0}" = 1 ]; then
	[ "$WITH_NGINX" = 1 ] && NAMES=("${NAMES[@]:1}")
	half=$((CONNS / 2))
	for r in $(seq 1 "$ROUNDS"); do
		declare -A C0
		loads=()
		for n in "${NAMES[@]}"; do
			wrk -t1 -c"$half" -d1s -s "$TMP/post.lua" "http://127.0.0.1:${PORT[$n]}$PATH_V1" >/dev/null &
			loads+=($!)
		done
		wait "${loads[@]}"
		declare -A T0
		for n in "${NAMES[@]}"; do C0[$n]=$(cpu_ns "${PID[$n]}") T0[$n]=$(cpu_ticks "${PID[$n]}"); done
		loads=()
		for n in "${NAMES[@]}"; do
			wrk -t1 -c"$half" -d"${DURATION}s" -s "$TMP/post.lua" "http://127.0.0.1:${PORT[$n]}$PATH_V1" >"$TMP/wrk-$n.txt" &
			loads+=($!)
		done
		wait "${loads[@]}"
		for n in "${NAMES[@]}"; do
			record "$n" "$r" "$(cat "$TMP/wrk-$n.txt")" "$((C0[$n]))" "${T0[$n]}"
		done
	done
	ROUNDS=0
fi
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order so no system always follows the same neighbour.
	k=$(( (r - 1) % ${#NAMES[@]} ))
	order=("${NAMES[@]:k}" "${NAMES[@]:0:k}")
	for n in "${order[@]}"; do
		url="http://127.0.0.1:${PORT[$n]}$PATH_V1"
		wrk -t"$THREADS" -c"$CONNS" -d1s -s "$TMP/post.lua" "$url" >/dev/null
		c0=$(cpu_ns "${PID[$n]}")
		t0=$(cpu_ticks "${PID[$n]}")
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$TMP/post.lua" "$url")
		record "$n" "$r" "$out" "$c0" "$t0"
	done
done

awk '
{
	for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	s = f["system"]; if (!(s in seen)) { seen[s] = 1; order[++n] = s }
	c = ++cnt[s]; rps[s, c] = f["rps"]; cpu[s, c] = f["cpu_us"]; usr[s, c] = f["user_us"]; sys[s, c] = f["sys_us"]
}
function med(a, s, c,    i, j, x, v) {
	for (i = 1; i <= c; i++) v[i] = a[s, i] + 0
	for (i = 2; i <= c; i++) { x = v[i]; j = i - 1; while (j >= 1 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
	return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
}
END {
	# Each gateway after the first is also given the median over rounds of
	# its CPU per request less that of the first gateway in the same round.
	for (k = 1; k <= n; k++) if (order[k] != "nginx") { base = order[k]; break }
	for (k = 1; k <= n; k++) {
		s = order[k]
		line = sprintf("system=%s rps=%.0f cpu_us=%.2f user_us=%.2f sys_us=%.2f", s, med(rps, s, cnt[s]), med(cpu, s, cnt[s]),
			med(usr, s, cnt[s]), med(sys, s, cnt[s]))
		if (s != "nginx" && s != base) {
			for (i = 1; i <= cnt[s]; i++) {
				d[s, i] = cpu[s, i] - cpu[base, i]; du[s, i] = usr[s, i] - usr[base, i]; ds[s, i] = sys[s, i] - sys[base, i]
			}
			line = line sprintf(" paired_delta_us=%.2f paired_user_us=%.2f paired_sys_us=%.2f", med(d, s, cnt[s]), med(du, s, cnt[s]), med(ds, s, cnt[s]))
		}
		print line
	}
}' "$TMP/runs.txt"
