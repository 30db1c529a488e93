package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	"parley/storage"
	"parley/storage/sqlstore"
)

// TestAuditLogAppendOnly: the database itself refuses to change or delete audit entries.
func TestAuditLogAppendOnly(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		for i, action := range []string{"login", "login_failure", "deactivation"} {
			if err := s.AppendAudit(ctx, storage.AuditEntry{TS: int64(1000 + i), Action: action, UserID: "@a:hs"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []string{`UPDATE audit_log SET action = 'x'`, `DELETE FROM audit_log`} {
			err := s.DB().Write(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			if err == nil {
				t.Errorf("%s succeeded", q)
			}
		}
		got, err := s.ListAudit(ctx, storage.AuditFilter{UserID: "@a:hs", From: 1001, Limit: 10})
		if err != nil || len(got) != 2 || got[0].Action != "login_failure" {
			t.Fatalf("list: %v %+v", err, got)
		}
		if got, _ := s.ListAudit(ctx, storage.AuditFilter{Action: "login", Limit: 10}); len(got) != 1 {
			t.Fatalf("action filter: %+v", got)
		}
		if got, _ := s.ListAudit(ctx, storage.AuditFilter{After: 1, Limit: 10}); len(got) != 2 {
			t.Fatalf("paging: %+v", got)
		}
	})
}
