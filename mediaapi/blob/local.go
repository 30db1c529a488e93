package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// copyBufferSize is the chunk in which uploads are streamed to disk.
const copyBufferSize = 256 << 10

// Local is a Store in a directory: blobs live at <root>/ab/cd/<hash>, and
// uploads are written to <root>/tmp first and renamed into place once their
// hash is known.
type Local struct {
	root string
}

var _ Store = (*Local)(nil)

// staleUpload is the age after which a file left in tmp/ (by a crash
// mid-upload) is removed when a store is opened. It is long enough that an
// upload still running in another process sharing the directory is kept.
const staleUpload = 24 * time.Hour

// NewLocal returns a Local store rooted at dir, creating it if needed, and
// removes stale partial uploads.
func NewLocal(dir string) (*Local, error) {
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create media directory: %w", err)
	}
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleUpload {
				os.Remove(filepath.Join(tmp, e.Name()))
			}
		}
	}
	return &Local{root: dir}, nil
}

func (l *Local) path(sha string) string {
	return filepath.Join(l.root, sha[0:2], sha[2:4], sha)
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, r io.Reader, max int64) (Info, error) {
	tmp, err := os.CreateTemp(filepath.Join(l.root, "tmp"), "upload-*")
	if err != nil {
		return Info{}, fmt.Errorf("create temporary file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	buf := make([]byte, copyBufferSize)
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, max+1)}, buf)
	if err != nil {
		return Info{}, err
	}
	if n > max {
		return Info{}, ErrTooLarge
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("sync upload: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("close upload: %w", err)
	}
	info := Info{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	dst := l.path(info.SHA256)
	if st, err := os.Stat(dst); err == nil && st.Size() == n {
		return info, nil // identical content is stored once; the deferred cleanup removes tmp
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return Info{}, fmt.Errorf("create blob directory: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("store blob: %w", err)
	}
	done = true
	return info, nil
}

// Open implements Store.
func (l *Local) Open(_ context.Context, sha string) (Object, error) {
	if !ValidHash(sha) {
		return nil, ErrNotFound
	}
	f, err := os.Open(l.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &file{File: f, size: st.Size()}, nil
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, sha string) error {
	if !ValidHash(sha) {
		return nil
	}
	err := os.Remove(l.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

type file struct {
	*os.File
	size int64
}

func (f *file) Size() int64 { return f.size }

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
