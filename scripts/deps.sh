#!/usr/bin/env bash
# The one prerequisites step: installs, as root and only when missing, the
# Debian packages (and the npm client library) that a target needs. make demo,
# make test, make generate, the benchmark scripts and .ci/run all call it, so
# the lists below are the only place they live.
#
#   scripts/deps.sh [--dry-run] demo|test|generate|bench|all
#
# --dry-run prints what would be installed, one per line, and changes nothing.
#
# Quiet when nothing is missing; one line per package it installs; a clear
# error naming the package when apt fails. Not root: demo stops with the one
# command to run; test warns and goes on (the tests skip what they cannot do).
set -euo pipefail
cd "$(dirname "$0")/.."

# Major versions are pinned where output depends on them: clang-14 builds the
# committed eBPF objects byte for byte.
pkgs_demo=(iproute2 util-linux procps ethtool iputils-ping)
pkgs_generate=(clang-14 llvm-14 libbpf-dev bpftool)
pkgs_test=("${pkgs_demo[@]}" redis-server postgresql tmux hping3 curl xdp-tools libxdp1 ca-certificates prometheus nodejs)
pkgs_test+=(bird2) # the BGP router of the multi-balancer lab (test/e2e/bgp_test.go)
pkgs_bench=(wrk nginx haproxy)
# The real Kubernetes API server's store (internal/kubetest; the server itself
# is built by scripts/kube-apiserver.sh) and the image builder (scripts/image.sh).
pkgs_test+=(etcd-server buildah)

# The OpenAI SDK the conformance test drives, installed into a folder the
# tests own (ignored by git). The exact version is pinned for repeatable runs.
openai_sdk_version=4.104.0
# Anthropic's SDK drives the gateway's Messages API (test/sdk/inbound.mjs).
anthropic_sdk_version=1.10.0
sdk_dir=test/sdk/node

dry_run=0
if [[ "${1:-}" == --dry-run ]]; then
	dry_run=1
	shift
fi
target=${1:-}
case "$target" in
demo) want=("${pkgs_demo[@]}") ;;
test) want=("${pkgs_test[@]}") ;;
generate) want=("${pkgs_generate[@]}") ;;
bench) want=("${pkgs_demo[@]}" "${pkgs_bench[@]}") ;;
all) want=("${pkgs_test[@]}" "${pkgs_generate[@]}" "${pkgs_bench[@]}") ;;
*)
	echo "usage: scripts/deps.sh [--dry-run] demo|test|generate|bench|all" >&2
	exit 2
	;;
esac

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

missing=()
for p in "${want[@]}"; do
	installed "$p" || missing+=("$p")
done
# A fresh machine's Node comes with its own npm (not Debian's package, which
# would conflict with it); Debian's is needed only where none is there.
if [[ " ${want[*]} " == *" nodejs "* ]] && ! command -v npm >/dev/null; then
	missing+=(npm)
fi

need_sdk=0
if [[ "$target" == test || "$target" == all ]]; then
	[[ -f "$sdk_dir/node_modules/openai/package.json" ]] &&
		grep -q "\"version\": \"$openai_sdk_version\"" "$sdk_dir/node_modules/openai/package.json" || need_sdk=1
	[[ -f "$sdk_dir/node_modules/@anthropic-ai/sdk/package.json" ]] &&
		grep -q "\"version\": \"$anthropic_sdk_version\"" "$sdk_dir/node_modules/@anthropic-ai/sdk/package.json" || need_sdk=1
fi

if ((${#missing[@]} == 0 && need_sdk == 0)); then
	exit 0
fi
if ((dry_run)); then
	for p in "${missing[@]}"; do echo "$p"; done
	((need_sdk)) && echo "npm:openai@$openai_sdk_version npm:@anthropic-ai/sdk@$anthropic_sdk_version"
	exit 0
fi

if [[ $EUID -ne 0 && ${#missing[@]} -gt 0 ]]; then
	case "$target" in
	test)
		echo "deps: not root, so not installing ${missing[*]}; tests that need them will skip (run: sudo scripts/deps.sh test)" >&2
		missing=()
		;;
	*)
		echo "make $target needs root to install ${missing[*]}: run sudo make $target" >&2
		exit 1
		;;
	esac
fi

if ((${#missing[@]} > 0)); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null 2>&1 || echo "deps: apt-get update failed; trying the cached lists" >&2
	for p in "${missing[@]}"; do echo "deps: installing $p"; done
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/infergate-deps.log 2>&1; then
		# Name the package that failed: retry one at a time.
		for p in "${missing[@]}"; do
			installed "$p" && continue
			if ! apt-get install -y -qq --no-install-recommends "$p" >>/tmp/infergate-deps.log 2>&1; then
				echo "deps: apt-get could not install $p (log: /tmp/infergate-deps.log)" >&2
				exit 1
			fi
		done
	fi
	# A distribution's prometheus starts a system service on install; the
	# tests run their own, so stop the packaged one where it started.
	if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
		systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
	fi
	# Likewise etcd-server's packaged service: internal/kubetest runs its own.
	if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null; then
		systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
fi

if ((need_sdk)); then
	echo "deps: installing openai@$openai_sdk_version and @anthropic-ai/sdk@$anthropic_sdk_version (npm) into $sdk_dir"
	mkdir -p "$sdk_dir"
	if ! npm install --silent --no-audit --no-fund --prefix "$sdk_dir" "openai@$openai_sdk_version" "@anthropic-ai/sdk@$anthropic_sdk_version" >/tmp/infergate-deps-npm.log 2>&1; then
		echo "deps: npm could not install openai@$openai_sdk_version or @anthropic-ai/sdk@$anthropic_sdk_version (log: /tmp/infergate-deps-npm.log)" >&2
		exit 1
	fi
fi
