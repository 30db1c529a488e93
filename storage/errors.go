// Package storage declares Parley's storage interfaces, one per kind of data.
// storage/sqlstore implements all of them once over database/sql, for SQLite
// and PostgreSQL. Components depend on these interfaces, never on tables.
package storage

import "errors"

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a unique constraint would be violated.
	ErrConflict = errors.New("already exists")
)
