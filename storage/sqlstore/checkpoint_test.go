package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackgroundCheckpoint checks that committed pages reach the database
// file through the background checkpointer, long before SQLite's automatic
// checkpoint (walSafetyPages) would run, and that Close stops it.
func TestBackgroundCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ck.db")
	db, err := Open(context.Background(), "sqlite://"+path, 2)
	if err != nil {
		t.Fatal(err)
	}
	if db.cp == nil {
		t.Fatal("no checkpointer started")
	}
	ctx := context.Background()
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE blobs (b TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	blob := strings.Repeat("x", 8000)
	const writes = 2 * checkpointEvery
	for i := 0; i < writes; i++ {
		if err := db.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO blobs (b) VALUES ($1)`, blob)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Roughly half the blobs must be in the main file after the first kick.
	want := int64(checkpointEvery * len(blob))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes after %d writes, want >= %d (no checkpoint)", st.Size(), writes, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- db.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}
