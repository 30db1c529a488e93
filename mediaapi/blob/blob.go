// Package blob stores media bytes addressed by their SHA-256, so that
// identical content is kept once. Store is the interface the media
// repository uses; Local keeps blobs in a directory. Another backend (an
// S3-compatible bucket) implements the same interface: Put uploads to a
// temporary key while hashing and then copies to the content address, Open
// answers seeks with ranged GETs.
package blob

import (
	"context"
	"errors"
	"io"
)

var (
	// ErrNotFound is returned by Open for a hash that is not stored.
	ErrNotFound = errors.New("blob not found")
	// ErrTooLarge is returned by Put when the content exceeds its limit.
	ErrTooLarge = errors.New("blob too large")
)

// Info describes stored content.
type Info struct {
	SHA256 string // lower-case hex
	Size   int64
}

// Object is stored content opened for reading. It seeks, so that HTTP Range
// requests are served without reading the whole blob.
type Object interface {
	io.ReadSeekCloser
	// Size is the length of the content in bytes.
	Size() int64
}

// Store keeps content addressed by SHA-256.
type Store interface {
	// Put streams r into the store without holding it in memory, reading at
	// most max bytes: longer content is discarded and ErrTooLarge returned.
	// Content that is already stored is kept once.
	Put(ctx context.Context, r io.Reader, max int64) (Info, error)
	// Open opens content by hash; ErrNotFound if it is not stored.
	Open(ctx context.Context, sha256 string) (Object, error)
	// Delete removes content; deleting absent content is not an error.
	Delete(ctx context.Context, sha256 string) error
}

// ValidHash reports whether s is a lower-case hex SHA-256, the only names
// blobs have (so a hash can never be used as a path traversal).
func ValidHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
