package storage

import "errors"

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a unique constraint would be violated.
	ErrConflict = errors.New("already exists")
	// ErrTooLarge is returned when a write would exceed a size limit.
	ErrTooLarge = errors.New("too large")
	// ErrForbidden is returned when the caller may not change the row.
	ErrForbidden = errors.New("forbidden")
)
