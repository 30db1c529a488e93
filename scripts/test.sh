#!/usr/bin/env bash
# Runs every test: go vet, the suite on SQLite, then on PostgreSQL.
# PostgreSQL: PARLEY_TEST_POSTGRES (a URL), else 127.0.0.1:5432 database test;
# this script starts the local cluster if it is installed and not running.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3
# SQLite's FTS5 full-text index backs server-side search (mattn/go-sqlite3 build tag).
export GOFLAGS="${GOFLAGS:-} -tags=sqlite_fts5"

if ! command -v gcc >/dev/null; then
	echo "gcc is needed for github.com/mattn/go-sqlite3 (cgo); installing" >&2
	apt-get update -qq && apt-get install -y -qq gcc >/dev/null
fi
if [ -z "${PARLEY_TEST_POSTGRES:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
	if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
		pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
		for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	fi
fi

# matrix-js-sdk, the second sliding sync client (syncapi TestSlidingSyncMatrixJSSDK).
if command -v npm >/dev/null && [ ! -d syncapi/testdata/jssdk/node_modules ]; then
	npm ci --prefix syncapi/testdata/jssdk --no-audit --no-fund >/dev/null
fi

go vet ./...
echo "== tests on SQLite"
go test -count=1 -timeout 20m ./...
echo "== tests on PostgreSQL"
PARLEY_TEST_DB=postgres go test -count=1 -timeout 20m ./...
