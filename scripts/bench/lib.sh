# Shared by the L7 benchmark scripts (sourced, not run): tool installs,
# waiting for a port, the wrk request script and the nginx configuration.

# bench_need installs what the benchmarks need; the package list lives in
# scripts/deps.sh (its bench target), the one prerequisites step.
bench_need() {
	"$(dirname "${BASH_SOURCE[0]}")/../deps.sh" bench
}

# bench_wait_port waits up to 30 s for 127.0.0.1:$1 to accept.
bench_wait_port() {
	local port=$1
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "port $port never opened" >&2
	return 1
}

# bench_post_lua writes to $1 a wrk script that POSTs the body in file $2
# with API key $3.
bench_post_lua() {
	cat >"$1" <<LUA
local f = assert(io.open("$2", "r"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $3"
LUA
}

# bench_nginx_conf writes $1/nginx.conf: nginx on 127.0.0.1:$2 as a plain
# keep-alive reverse proxy to the mock on 127.0.0.1:$3, unbuffered.
bench_nginx_conf() {
	local dir=$1
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	client_max_body_size 8m;
	upstream mock { server 127.0.0.1:$3; keepalive 256; }
	server {
		listen 127.0.0.1:$2;
		location / {
			proxy_pass http://mock;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
NGINX
}

# bench_setup makes the run's temporary folder $TMP (named after $1) and
# arranges for the processes in PIDS to be stopped and $TMP removed on
# exit.
bench_setup() {
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}

log() { echo "# $*" >&2; }
