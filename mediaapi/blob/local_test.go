package blob_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/mediaapi/blob"
)

func TestLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("hello world"))
	want := hex.EncodeToString(sum[:])
	info, err := s.Put(ctx, strings.NewReader("hello world"), 11)
	if err != nil || info.SHA256 != want || info.Size != 11 {
		t.Fatalf("put: %+v %v", info, err)
	}
	if _, err := s.Put(ctx, strings.NewReader("hello world"), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, strings.NewReader("hello world!"), 11); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("12 bytes with limit 11: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("%d temporary files left", len(ents))
	}
	obj, err := s.Open(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obj.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(obj)
	obj.Close()
	if string(rest) != "world" || obj.Size() != 11 {
		t.Fatalf("read after seek %q, size %d", rest, obj.Size())
	}
	if err := s.Delete(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, want); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
	if err := s.Delete(ctx, want); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	for _, bad := range []string{"../../etc/passwd", strings.ToUpper(want), want[:63]} {
		if _, err := s.Open(ctx, bad); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open %q: %v", bad, err)
		}
	}
	// Stale partial uploads are removed when a store is opened; recent ones are kept.
	stale, fresh := filepath.Join(dir, "tmp", "upload-old"), filepath.Join(dir, "tmp", "upload-new")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.NewLocal(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale upload kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("recent upload removed: %v", err)
	}
	// A cancelled context stops a long copy.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, strings.NewReader("x"), 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with cancelled context: %v", err)
	}
}
