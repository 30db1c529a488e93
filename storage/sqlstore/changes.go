package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5"
)

// changesChannel is the PostgreSQL NOTIFY channel of the change feed.
const changesChannel = "parley_changes"

// announce makes the commit of tx announce topic to every listening process
// (PostgreSQL delivers a NOTIFY when its transaction commits, and not if it
// rolls back). SQLite has one process: nothing to announce.
func (s *Store) announce(ctx context.Context, tx *sql.Tx, topic string) error {
	if s.db.Dialect != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, changesChannel, topic)
	return err
}

// AnnounceChange implements storage.ChangeFeed.
func (s *Store) AnnounceChange(ctx context.Context, topic string) error {
	if s.db.Dialect != Postgres {
		return nil
	}
	_, err := s.db.w.ExecContext(ctx, `SELECT pg_notify($1, $2)`, changesChannel, topic)
	return err
}

// SharedDatabase implements storage.ChangeFeed.
func (s *Store) SharedDatabase() bool { return s.db.Dialect == Postgres }

// ListenChanges implements storage.ChangeFeed. On PostgreSQL it LISTENs on
// a connection of its own (outside the pool, which it would otherwise hold
// for ever), reconnecting with a backoff of up to ten seconds.
func (s *Store) ListenChanges(ctx context.Context, f func(topic string)) error {
	if s.db.Dialect != Postgres {
		return nil
	}
	backoff := 100 * time.Millisecond
	for {
		// On an error the connection broke or could not be made: try again
		// (the reconnection reports "", so nothing missed stays unseen).
		_ = s.listenOnce(ctx, f, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// listenOnce listens on one connection until it fails or ctx ends; it calls
// listening once LISTEN is in place.
func (s *Store) listenOnce(ctx context.Context, f func(string), listening func()) error {
	conn, err := pgx.Connect(ctx, s.db.url)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+changesChannel); err != nil {
		return err
	}
	listening()
	f("") // anything may have changed while nobody listened
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		f(n.Payload)
	}
}
