#!/usr/bin/env bash
# Portero's test suite, from a fresh machine: installs what the tests need
# (Debian's chromium, the demo IdP's npm packages, staticcheck), then runs
# gofmt, go vet, staticcheck, the Rego policy tests and the Go tests with the
# race detector, the real-browser tests included.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

echo "== prerequisites"
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
if [ ! -d demo/idp/node_modules/oidc-provider ]; then
  (cd demo/idp && npm ci --no-audit --no-fund --loglevel=error)
fi
command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@latest
# Three modules: the gateway at the root, and e2e/ (chromedp) and bench/
# (gonum/plot) with go.mods of their own, so that their dependencies stay out
# of Portero's. ./... from the root does not descend into them.
modules=(. e2e bench)
for m in "${modules[@]}"; do go -C "$m" mod download; done

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './demo/idp/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
for m in "${modules[@]}"; do go -C "$m" vet ./...; done

echo "== staticcheck"
for m in "${modules[@]}"; do (cd "$m" && staticcheck ./...); done

echo "== rego tests (portero test --coverage rego/)"
go run ./cmd/portero test --coverage rego

echo "== fuzz targets, a few seconds each"
for spec in proxy:FuzzNormalizePath proxy:FuzzNormalizeHost proxy:FuzzStripReservedHeaders proxy:FuzzReadBody \
    proxy/authn/session:FuzzOpenSealed proxy/authn/session:FuzzOpenCookieHeader proxy/authn/session:FuzzSealRoundTrip config:FuzzParse; do
  go test -run='^$' -fuzz="^${spec#*:}\$" -fuzztime=3s "./${spec%%:*}"
done

echo "== fault tests, short version (scripts/faults.sh runs the full length)"
PORTERO_FAULTS=short go test -count=1 ./faults

echo "== go test -race (browser tests included: PORTERO_E2E=1)"
for m in "${modules[@]}"; do PORTERO_E2E=1 go -C "$m" test -race -count=1 ./...; done
