#!/usr/bin/env bash
# make demo: build infergate, start a namespace lab (2 clients, an attacker,
# the XDP balancer, 3 GPU hosts with mock inference servers), send real
# traffic and a bounded flood, print where requests went and what was
# dropped, and clean up, also when interrupted.
#
#   DEMO_HOLD=10m make demo   keeps the lab up after the summary to try the
#                             printed commands (Ctrl-C ends it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
	echo "make demo needs root (network namespaces, XDP, bpffs); try: sudo make demo" >&2
	exit 1
fi
for tool in ip nsenter ethtool sysctl; do
	command -v "$tool" >/dev/null || { echo "make demo needs $tool" >&2; exit 1; }
done

GO=${GO:-go}
export GOFLAGS=${GOFLAGS:--mod=mod}
[[ -x bin/infergate ]] || make build
"$GO" build -o bin/iglab ./test/e2e/cmd/iglab

# A prefix unique to this run: the fallback cleanup below only ever touches
# namespaces and pins that start with it.
PREFIX="igd$$x"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

demo_pid=""
cleanup() {
	trap - INT TERM EXIT
	if [[ -n "$demo_pid" ]] && kill -0 "$demo_pid" 2>/dev/null; then
		kill -INT "$demo_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$demo_pid" 2>/dev/null || true
	fi
	# Whatever an interrupted run left behind.
	for pin in /sys/fs/bpf/"$PREFIX"*; do
		[[ -e "$pin" ]] && bin/infergate agent uninstall --pin-dir "$pin" >/dev/null 2>&1 || true
		rm -rf "$pin" 2>/dev/null || true
	done
	for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX" || true); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

hold=()
[[ -n "${DEMO_HOLD:-}" ]] && hold=(--hold "$DEMO_HOLD")
bin/iglab demo --infergate bin/infergate --prefix "$PREFIX" "${hold[@]}" &
demo_pid=$!
wait "$demo_pid"
