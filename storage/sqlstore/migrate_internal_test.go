package sqlstore

import (
	"slices"
	"testing"
)

// TestMigrationFiles: each dialect's migrations load (no two share a number
// in a track), and both dialects have the same files.
func TestMigrationFiles(t *testing.T) {
	names := map[Dialect][]string{}
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := loadMigrations(d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		for _, m := range ms {
			names[d] = append(names[d], m.track+"/"+m.name)
		}
	}
	if !slices.Equal(names[SQLite], names[Postgres]) {
		t.Fatalf("dialects differ:\nsqlite   %v\npostgres %v", names[SQLite], names[Postgres])
	}
}
