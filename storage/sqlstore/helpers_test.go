package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"parley/internal/testserver"
	"parley/storage/sqlstore"
)

// forEachStore runs fn on a fresh SQLite store and on a fresh PostgreSQL one
// (that subtest skips when no server answers, except in CI).
func forEachStore(t *testing.T, fn func(t *testing.T, s *sqlstore.Store)) {
	t.Helper()
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlstore.New(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"), 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := sqlstore.New(ctx, testserver.PostgresDatabase(t), 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
}
