#!/usr/bin/env bash
# Builds the kube-apiserver that internal/kubetest runs, once, into a cache
# that outlives the checkout (CI keeps /var/cache/infergate between runs where
# it can; the Go module cache makes a rebuild cheaper too):
#
#   scripts/kube-apiserver.sh            build when missing, print the path
#   scripts/kube-apiserver.sh --print    print the path only
#
# The recipe: k8s.io/kubernetes at the pinned release, with every k8s.io
# staging module replaced by its matching k8s.io/* release (the kubernetes
# module names them at v0.0.0 and replaces them with ./staging, which a
# module download does not have). About 4 minutes on 2 cores.
#
# Two builds never run at once (flock), and the binary appears only when
# complete (built to a temporary name, then renamed), so a test never runs a
# half-written file.
set -euo pipefail

k8s_version=v1.37.2      # keep in step with internal/kubetest.Version
staging_version=v0.37.2  # the k8s.io/* release of the same Kubernetes release
cache=${INFERGATE_CACHE:-/var/cache/infergate}
out=${INFERGATE_KUBE_APISERVER:-$cache/kube-apiserver-$k8s_version}

if [[ "${1:-}" == --print ]]; then
	echo "$out"
	exit 0
fi

export PATH=/usr/local/go/bin:$PATH
mkdir -p "$cache" "$(dirname "$out")"
exec 9>"$cache/kube-apiserver.lock"
flock 9
if [[ -x "$out" ]]; then
	echo "$out"
	exit 0
fi

staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
	cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
	cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
	kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
	mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)

work=$(mktemp -d "$cache/kbuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$cache/kube-apiserver-build.log
echo "kube-apiserver: building $k8s_version into $out (about 4 minutes on 2 cores; log: $log)" >&2
(
	cd "$work"
	export GOFLAGS=-mod=mod
	go mod init kbuild
	go mod edit -require=k8s.io/kubernetes@$k8s_version
	for m in "${staging[@]}"; do
		go mod edit -replace=k8s.io/$m=k8s.io/$m@$staging_version
	done
	# tidy needs one import of the command to resolve its whole graph.
	printf 'package main\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\nfunc main() {}\n' >main.go
	go mod tidy
	rm main.go
	go build -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
) >"$log" 2>&1 || {
	echo "kube-apiserver: build failed; the end of $log:" >&2
	tail -20 "$log" >&2
	rm -f "$out.tmp"
	exit 1
}
mv "$out.tmp" "$out"
echo "$out"
