#!/usr/bin/env bash
# Portero's fault and soak tests, full length: the real binary on loopback
# with a broken policy written under load, SIGTERM under load, the upstream
# down and slow, 10,000 idle keep-alive connections and a 10-minute soak with
# memory and goroutines sampled (see faults/faults_test.go). About 15
# minutes. CI runs a short version of each (scripts/test.sh).
# Usage: ./scripts/faults.sh [-run REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"
PORTERO_FAULTS=full go test -count=1 -v -timeout 40m "$@" ./faults
