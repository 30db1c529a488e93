package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"

	"parley/storage"
)

// Store implements storage.Store over a DB.
type Store struct {
	db *DB

	// tokenStmt is the prepared access-token lookup, the query every
	// authenticated request makes; prepared once to save a parse per request.
	tokenStmt *sql.Stmt
	// tokens caches access-token lookups on SQLite (tokencache.go).
	tokens tokenCache
	// fts5 is set when SQLite has FTS5 and search_fts indexes search_docs.
	fts5 bool
	// searchMu serialises CatchUpSearch runs.
	searchMu sync.Mutex
	// eventsMutated counts writes that change or remove stored events (a
	// redaction, a purge, an outlier moved into the stream): caches of
	// recent events compare it (EventsMutated).
	eventsMutated atomic.Uint64
	// keyCounts caches DeviceKeyCounts on SQLite (keycounts.go).
	keyCounts keyCountCache
}

// EventsMutated implements storage.EventMutations.
func (s *Store) EventsMutated() uint64 { return s.eventsMutated.Load() }

var _ storage.Store = (*Store)(nil)

// New opens the database at url, runs migrations and returns the store.
func New(ctx context.Context, url string, maxConns int) (*Store, error) {
	db, err := Open(ctx, url, maxConns)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db}
	if s.fts5, err = s.setupFTS(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.tokenStmt, err = db.r.PrepareContext(ctx, deviceByTokenQuery); err != nil {
		db.Close()
		return nil, fmt.Errorf("prepare token lookup: %w", err)
	}
	return s, nil
}

// DB exposes the handle for tests of this package.
func (s *Store) DB() *DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	_ = s.tokenStmt.Close()
	return s.db.Close()
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.r.PingContext(ctx) }

// forUpdate is " FOR UPDATE" on PostgreSQL, to lock rows read for a
// read-modify-write; SQLite needs nothing (its write transactions are
// exclusive: BEGIN IMMEDIATE on the single writer connection).
func (s *Store) forUpdate() string {
	if s.db.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}
