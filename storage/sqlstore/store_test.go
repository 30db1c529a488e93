package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"parley/internal/testserver"
	"parley/storage"
	"parley/storage/sqlstore"
	"parley/storage/storagetest"
)

func openStore(t *testing.T, url string) storage.Store {
	t.Helper()
	s, err := sqlstore.New(context.Background(), url, 4)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreSQLite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "test.db"))
	})
}

func TestStorePostgres(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return openStore(t, testserver.PostgresDatabase(t))
	})
}
