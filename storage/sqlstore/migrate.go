package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations
var migrationFS embed.FS

// migration is one forward-only schema step of a track. Each kind of data has
// its own track (migrations/<dialect>/<track>/NNNN_name.sql) so that parts of
// the schema evolve independently; both dialects have the same files.
type migration struct {
	track   string
	version int
	name    string
	sql     string
}

func loadMigrations(d Dialect) ([]migration, error) {
	root := path.Join("migrations", d.String())
	var out []migration
	err := fs.WalkDir(migrationFS, root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		track, file, ok := strings.Cut(rel, "/")
		if !ok {
			return fmt.Errorf("migration %s is not in a track directory", p)
		}
		num, _, _ := strings.Cut(file, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", p)
		}
		b, err := migrationFS.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, migration{track: track, version: v, name: file, sql: string(b)})
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].track != out[j].track {
			return out[i].track < out[j].track
		}
		return out[i].version < out[j].version
	})
	for i := 1; i < len(out); i++ {
		if out[i].track == out[i-1].track && out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s of track %s have the same number", out[i-1].name, out[i].name, out[i].track)
		}
	}
	return out, err
}

// Migrate applies every migration not yet applied, each in its own transaction
// together with its record in schema_migrations.
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		track TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
		PRIMARY KEY (track, version))`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	migs, err := loadMigrations(db.Dialect)
	if err != nil {
		return err
	}
	if db.Dialect == Postgres {
		// Several Parley processes may share one database: serialise migrations.
		conn, err := db.w.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7283712)`); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7283712)`) //nolint:errcheck
	}
	for _, m := range migs {
		err := db.Write(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE track = $1 AND version = $2`, m.track, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (track, version, name) VALUES ($1, $2, $3)`, m.track, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s/%s: %w", m.track, m.name, err)
		}
	}
	return nil
}
