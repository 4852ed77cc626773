#!/usr/bin/env bash
# The cluster source at scale, against a real kube-apiserver (internal/kubetest)
# and a real agent over loaded BPF maps (root): 200 LoadBalancer Services with
# 1,000 and 10,000 endpoints in slices of 10. Reports, per size, the time from
# an EndpointSlice update to the agent's maps being written (p50, p99), a cold
# full resync (list everything, compose, apply into a fresh agent), and the
# process's memory. `make bench` runs the same benchmark among the others.
#
#   scripts/bench/cluster.sh            # 100 changes per size
#   CHANGES=300 scripts/bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOFLAGS=-mod=mod CGO_CFLAGS=-Wno-deprecated-declarations
scripts/kube-apiserver.sh >/dev/null
exec go test -run '^$' -bench 'BenchmarkClusterScale' -benchtime "${CHANGES:-100}x" -count=1 -timeout 30m ./cluster/
