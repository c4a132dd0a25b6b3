#!/usr/bin/env bash
# Portero's test suite, from a fresh machine: installs what the tests need
# (Debian's chromium, nginx, caddy and prometheus's promtool, the demo IdP's
# npm packages, staticcheck, Mailpit), then runs
# gofmt, go vet, staticcheck, the Rego policy tests and the Go tests with the
# race detector, the real-browser tests included.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

echo "== prerequisites"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
need=()
command -v chromium >/dev/null || need+=(chromium)
# Real front proxies for the forward-auth tests (proxy/frontproxy_test.go,
# e2e/frontproxy_test.go).
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
# promtool, for the alert rules' tests (deploy/deploy_test.go).
command -v promtool >/dev/null || need+=(prometheus)
# PostgreSQL's server binaries: the store's tests on PostgreSQL, and the
# multi-replica fault tests, which run throwaway clusters of their own.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  # Debian starts nginx and caddy as services on install; the tests run
  # their own. A policy-rc.d that refuses every start keeps them from
  # starting (nothing is ever stopped by name), and is removed again.
  rcd=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    rcd=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rcd" >/dev/null && $SUDO chmod +x "$rcd"
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  [ -z "$rcd" ] || $SUDO rm -f "$rcd"
fi
# Installed above: the front-proxy and PostgreSQL tests must run, not skip.
export PORTERO_FRONTPROXY_REQUIRED=1 PORTERO_POSTGRES_REQUIRED=1
# The PostgreSQL server the tests use: PORTERO_TEST_POSTGRES when set (CI
# sets it to the machine's server), else a throwaway cluster in a temporary
# directory, on a free port, stopped when this script ends.
if [ -z "${PORTERO_TEST_POSTGRES:-}" ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pgdir=$(mktemp -d /tmp/portero-test-pg.XXXXXX)
  pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 25432)
  pgas=()
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pgdir"; chmod 755 "$pgdir"; pgas=(runuser -u postgres --); fi
  "${pgas[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  "${pgas[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pgport -k $pgdir -c max_connections=300" start >/dev/null
  trap '"${pgas[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null; rm -rf "$pgdir"' EXIT
  export PORTERO_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
  echo "PostgreSQL for the tests: a throwaway cluster on 127.0.0.1:$pgport"
else
  echo "PostgreSQL for the tests: ${PORTERO_TEST_POSTGRES%%\?*}"
fi
if [ ! -d demo/idp/node_modules/oidc-provider ]; then
  (cd demo/idp && npm ci --no-audit --no-fund --loglevel=error)
fi
command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@latest
# Mailpit, the real mail server of the e-mail tests (faults/mail_test.go,
# the browser tests) and the demo; installed, so those tests must run.
go version -m "$(go env GOPATH)/bin/mailpit" 2>/dev/null | grep -q 'axllent/mailpit[[:space:]]*v1.33.1' ||
  go install github.com/axllent/mailpit@v1.33.1
export PORTERO_MAILPIT_REQUIRED=1
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

echo "== the request path and control plane again, on a PostgreSQL access store (PORTERO_TEST_STORE=postgres)"
PORTERO_TEST_STORE=postgres go test -count=1 ./proxy/ ./control/
