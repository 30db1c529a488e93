# Parley needs Go 1.27 (mautrix's federation/pdu and eventauth use encoding/json/v2).
# The go command fetches that toolchain from the Go module proxy by itself.
export GOTOOLCHAIN := go1.27.3
# SQLite's FTS5 full-text index backs server-side search (mattn/go-sqlite3 build tag).
export GOFLAGS += -tags=sqlite_fts5

.PHONY: run build test test-sqlite test-postgres bench

run:
	go run ./cmd/parley

build:
	go build -o bin/parley ./cmd/parley

# test runs everything CI runs: vet, the whole suite on SQLite, and again on PostgreSQL.
test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchtime 2s ./...
