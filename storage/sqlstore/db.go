// Package sqlstore implements every storage interface once over database/sql.
// DML is shared between SQLite and PostgreSQL ($N placeholders work in both);
// only DDL (migrations/<dialect>/) and a few dialect switches differ.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/mattn/go-sqlite3"

	"parley/storage"
)

// Dialect is the SQL engine behind a DB.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is a database handle with a writer and a reader pool. On SQLite the
// writer is a single connection (SQLite allows one writer at a time, and
// queuing in Go is cheaper than busy-waiting in SQLite); on PostgreSQL both
// are the same pool.
type DB struct {
	w, r    *sql.DB
	Dialect Dialect
	// url is the PostgreSQL connection string, for the change-feed listener's own connection.
	url string

	// SQLite: the WAL is checkpointed by a background goroutine on its own
	// connection (cp), kicked every checkpointEvery commits, so that a
	// writer does not pay for copying pages and syncing the database file.
	cp       *sql.DB
	commits  atomic.Int64
	kick     chan struct{}
	quit     chan struct{}
	cpDone   chan struct{}
	quitOnce sync.Once
}

// checkpointEvery is how many commits apart background checkpoints run.
const checkpointEvery = 32

// walSafetyPages is the writer's own wal_autocheckpoint, in case the
// background checkpoints fall behind (SQLite's default is 1000 pages).
const walSafetyPages = 10000

// Open opens the database named by url (sqlite:///path or postgres://...).
func Open(ctx context.Context, rawURL string, maxConns int) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(rawURL, maxConns)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL, maxConns)
	}
	return nil, fmt.Errorf("unsupported database url %q", rawURL)
}

func openSQLite(rawURL string, maxConns int) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// sqlite:///abs/path and sqlite:///rel/path (relative to the working directory
	// when it does not exist at the root) and sqlite://rel/path are all accepted.
	path := u.Host + u.Path
	if u.Host == "" && strings.HasPrefix(u.Path, "/") && !filepath.IsAbs(strings.TrimPrefix(u.Path, "/")) {
		if _, err := os.Stat(filepath.Dir(u.Path)); err != nil {
			path = strings.TrimPrefix(u.Path, "/")
		}
	}
	if path == "" {
		return nil, errors.New("sqlite database url has no path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	base := "file:" + path + "?_busy_timeout=10000&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_stmt_cache_size=128&cache=private"
	w, err := sql.Open("sqlite3", base+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite3", base+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(maxConns)
	r.SetMaxIdleConns(maxConns)
	r.SetConnMaxIdleTime(0)
	db := &DB{w: w, r: r, Dialect: SQLite}
	if path != ":memory:" {
		db.startCheckpointer(base)
	}
	return db, nil
}

// startCheckpointer moves WAL checkpoints off the writer when a connection
// for them can be opened (otherwise SQLite's automatic ones stay in place).
func (db *DB) startCheckpointer(base string) {
	cp, err := sql.Open("sqlite3", base)
	if err != nil {
		return
	}
	cp.SetMaxOpenConns(1)
	cp.SetMaxIdleConns(1)
	cp.SetConnMaxIdleTime(0)
	if _, err := db.w.Exec(fmt.Sprintf(`PRAGMA wal_autocheckpoint = %d`, walSafetyPages)); err != nil {
		cp.Close()
		return
	}
	db.cp, db.kick, db.quit, db.cpDone = cp, make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(db.cpDone)
		for {
			select {
			case <-db.quit:
				return
			case <-db.kick:
				// PASSIVE: copies what it can without blocking writers or readers.
				_, _ = cp.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}
	}()
}

func openPostgres(ctx context.Context, rawURL string, maxConns int) (*DB, error) {
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return &DB{w: db, r: db, Dialect: Postgres, url: rawURL}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.cp != nil {
		db.quitOnce.Do(func() { close(db.quit) })
		<-db.cpDone
		_ = db.cp.Close()
	}
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// Reader is the pool for queries outside a write transaction.
func (db *DB) Reader() *sql.DB { return db.r }

// Write runs fn in a write transaction, committing if it returns nil and
// rolling back otherwise.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if db.kick != nil && db.commits.Add(1)%checkpointEvery == 0 {
		select {
		case db.kick <- struct{}{}:
		default: // one is pending already
		}
	}
	return nil
}

// Conflict translates a unique-constraint violation into storage.ErrConflict.
func Conflict(err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey) {
		return fmt.Errorf("%w: %v", storage.ErrConflict, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %v", storage.ErrConflict, err)
	}
	return err
}

// NotFound translates sql.ErrNoRows into storage.ErrNotFound.
func NotFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// In returns "($start,$start+1,…)" for n placeholders starting at $start.
func In(start, n int) string {
	b := make([]byte, 0, 2+n*5)
	b = append(b, '(')
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(start+i), 10)
	}
	b = append(b, ')')
	return string(b)
}

// queryColumn runs a query of one column on the read pool and returns its values.
func queryColumn[T any](ctx context.Context, db querier, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
