#!/usr/bin/env bash
# TLS termination benchmark: the same wrk load (HTTP/1.1 over TLS) against
# nginx terminating TLS in front of the mock inference server and against
# infergate's TLS listener (auth, token counting and limits on), in the same
# run, keep-alive and with a new handshake per request; infergate's plain
# listener alongside shows what TLS costs it.
#
#   DURATION=5 ROUNDS=3 scripts/bench/tls.sh
#
# Environment: DURATION (seconds per run, default 5), CONNS (64), THREADS
# (2), ROUNDS (3; each figure is the median over the rounds, systems
# measured in turn), BASE_PORT (18200), BODY_BYTES (68).
# With h2load installed (nghttp2-client) the TLS systems are also measured
# over HTTP/2 (mode=h2: H2_CONNS connections, H2_STREAMS streams each; h2load
# reports a mean latency, not percentiles: mean_ms).
# Prints "system=<name> mode=<keepalive|handshake|h2> rps=<n> p50_ms=<x> p99_ms=<y>" (medians).
set -euo pipefail

DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BODY_BYTES=${BODY_BYTES:-68}
BASE_PORT=${BASE_PORT:-18200}
H2_CONNS=${H2_CONNS:-16}
H2_STREAMS=${H2_STREAMS:-8}
MOCK_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
GW_TLS_PORT=$((BASE_PORT + 2))
GW_PLAIN_PORT=$((BASE_PORT + 3))
PATH_V1=/v1/chat/completions

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"
bench_setup infergate-tlsbench
bench_need wrk nginx openssl curl
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building"
export GOFLAGS=${GOFLAGS:--mod=mod}
(cd "$ROOT" && go build -o "$TMP/infergate" ./cmd/infergate && go build -o "$TMP/mockllm" ./test/mockllm/cmd/mockllm &&
	go build -o "$TMP/benchgen" ./test/loadgen/benchgen)

# One ECDSA P-256 certificate for both servers (what the tests use too).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

"$TMP/benchgen" -out "$TMP" -body-bytes "$BODY_BYTES" -upstream "127.0.0.1:$MOCK_PORT" -listen "127.0.0.1:$GW_PLAIN_PORT" -name plain
"$TMP/benchgen" -out "$TMP" -body-bytes "$BODY_BYTES" -upstream "127.0.0.1:$MOCK_PORT" -listen "127.0.0.1:$GW_TLS_PORT" -name tls
sed -i "s|^  gateway:\$|  gateway:\n    tls:\n      certFile: $TMP/cert.pem\n      keyFile: $TMP/key.pem|" "$TMP/tls.yaml"
grep -q "certFile" "$TMP/tls.yaml" || { echo "could not add tls to the policy" >&2; exit 1; }
KEY=sk-bench-0
bench_post_lua "$TMP/post.lua" "$TMP/body.json" "$KEY"
cp "$TMP/post.lua" "$TMP/post-close.lua"
echo 'wrk.headers["Connection"] = "close"' >>"$TMP/post-close.lua"

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<NGINX
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
	client_max_body_size 8m;
	upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 256; }
	server {
		# "ssl http2" on the listen line: nginx before 1.25 has no "http2 on".
		listen 127.0.0.1:$NGINX_PORT ssl http2;
		ssl_certificate $TMP/cert.pem;
		ssl_certificate_key $TMP/key.pem;
		ssl_protocols TLSv1.2 TLSv1.3;
		location / {
			proxy_pass http://mock;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
NGINX

"$TMP/mockllm" -listen "127.0.0.1:$MOCK_PORT" -batch 8192 -queue 8192 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
"$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
"$TMP/infergate" gateway --config "$TMP/tls.yaml" >"$TMP/gw-tls.log" 2>&1 &
PIDS+=($!)
"$TMP/infergate" gateway --config "$TMP/plain.yaml" >"$TMP/gw-plain.log" 2>&1 &
PIDS+=($!)
for p in $MOCK_PORT $NGINX_PORT $GW_TLS_PORT $GW_PLAIN_PORT; do bench_wait_port "$p"; done

url() {
	case $1 in
	nginx-tls) echo "https://127.0.0.1:$NGINX_PORT$PATH_V1" ;;
	infergate-tls) echo "https://127.0.0.1:$GW_TLS_PORT$PATH_V1" ;;
	infergate-plain) echo "http://127.0.0.1:$GW_PLAIN_PORT$PATH_V1" ;;
	esac
}
SYSTEMS=(nginx-tls infergate-tls infergate-plain)
for s in "${SYSTEMS[@]}"; do
	for v in --http1.1 --http2; do
		[ "$s" = infergate-plain ] && [ $v = --http2 ] && continue
		code=$(curl -sk $v -o /dev/null -w '%{http_version}/%{http_code}' -H "Authorization: Bearer $KEY" \
			-H 'Content-Type: application/json' --data-binary "@$TMP/body.json" "$(url "$s")")
		case $code in */200) log "$s $v answered $code" ;; *) echo "$s $v answered $code" >&2; cat "$TMP"/*.log >&2; exit 1 ;; esac
	done
done

to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "%s", v }'
}

run_wrk() {
	local name=$1 mode=$2 script=$TMP/post.lua out
	[ "$mode" = handshake ] && script=$TMP/post-close.lua
	wrk -t"$THREADS" -c"$CONNS" -d1s -s "$script" "$(url "$name")" >/dev/null
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$(url "$name")")
	local rps p50 p99 errs
	rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
	errs=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
	echo "system=$name mode=$mode rps=$rps p50_ms=$p50 p99_ms=$p99${errs:+ non2xx=$errs}"
}

run_h2() {
	local name=$1 out rps mean
	h2load -D 1 -c "$H2_CONNS" -m "$H2_STREAMS" -t "$THREADS" -d "$TMP/body.json" -H "Authorization: Bearer $KEY" \
		-H 'Content-Type: application/json' "$(url "$name")" >/dev/null
	out=$(h2load -D "$DURATION" -c "$H2_CONNS" -m "$H2_STREAMS" -t "$THREADS" -d "$TMP/body.json" \
		-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$(url "$name")")
	# "finished in 5.00s, 3456.70 req/s, ..." and "time for request: min max mean sd ..."
	rps=$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' <<<"$out")
	mean=$(to_ms "$(awk '/^time for request:/ { print $6 }' <<<"$out")")
	local bad
	# "status codes: 1000 2xx, 0 3xx, 0 4xx, 0 5xx"
	bad=$(awk '/^status codes:/ { print $5 + $7 + $9 }' <<<"$out")
	echo "system=$name mode=h2 rps=$rps mean_ms=$mean non2xx=$bad"
}

log "duration=${DURATION}s conns=$CONNS threads=$THREADS cpus=$(nproc) rounds=$ROUNDS"
: >"$TMP/runs.txt"
for r in $(seq 1 "$ROUNDS"); do
	for mode in keepalive handshake; do
		for i in 0 1 2; do
			s=${SYSTEMS[$(((i + r) % 3))]}
			run_wrk "$s" "$mode" | tee -a "$TMP/runs.txt" >&2
		done
	done
	if command -v h2load >/dev/null; then
		for i in 0 1; do
			s=${SYSTEMS[$(((i + r) % 2))]}
			run_h2 "$s" | tee -a "$TMP/runs.txt" >&2
		done
	fi
done
# Median of every numeric field per system and mode.
awk '{
	k = $1 " " $2
	if (!(k in seen)) { seen[k] = 1; order[++n] = k }
	for (i = 3; i <= NF; i++) {
		split($i, kv, "=")
		if (!((k, kv[1]) in c)) { keys[k] = keys[k] " " kv[1] }
		c[k, kv[1]]++; v[k, kv[1], c[k, kv[1]]] = kv[2] + 0
	}
}
END {
	for (o = 1; o <= n; o++) {
		k = order[o]; line = k
		nf = split(substr(keys[k], 2), fs, " ")
		for (j = 1; j <= nf; j++) {
			f = fs[j]; m = c[k, f]
			for (i = 1; i <= m; i++) a[i] = v[k, f, i]
			for (i = 2; i <= m; i++) { x = a[i]; q = i - 1; while (q >= 1 && a[q] > x) { a[q + 1] = a[q]; q-- } a[q + 1] = x }
			line = line " " f "=" ((m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2)
		}
		print line
	}
}' "$TMP/runs.txt" | sort
