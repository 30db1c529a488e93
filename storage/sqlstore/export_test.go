package sqlstore

import (
	"context"
	"path"
)

// RerunMigrationForTest executes one migration file of the store's dialect again.
func (s *Store) RerunMigrationForTest(ctx context.Context, track, name string) error {
	b, err := migrationFS.ReadFile(path.Join("migrations", s.db.Dialect.String(), track, name))
	if err != nil {
		return err
	}
	_, err = s.db.w.ExecContext(ctx, string(b))
	return err
}

// ExecForTest runs a statement on the write connection.
func (s *Store) ExecForTest(ctx context.Context, q string, args ...any) error {
	_, err := s.db.w.ExecContext(ctx, q, args...)
	return err
}
