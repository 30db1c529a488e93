package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.PushRuleStore = (*Store)(nil)

// PushRules implements storage.PushRuleStore.
func (s *Store) PushRules(ctx context.Context, user id.UserID) ([]storage.PushRule, error) {
	return pushRules(ctx, s.db.r, user)
}

type ruleQuerier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func pushRules(ctx context.Context, q ruleQuerier, user id.UserID) ([]storage.PushRule, error) {
	rows, err := q.QueryContext(ctx, `SELECT kind, rule_id, priority, is_default, enabled, actions, conditions, pattern
		FROM push_rules WHERE user_id = $1 ORDER BY kind, priority`, string(user))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.PushRule
	for rows.Next() {
		var r storage.PushRule
		var enabled sql.NullBool
		var actions, conds, pattern sql.NullString
		if err := rows.Scan(&r.Kind, &r.RuleID, &r.Priority, &r.Default, &enabled, &actions, &conds, &pattern); err != nil {
			return nil, err
		}
		if enabled.Valid {
			r.Enabled = &enabled.Bool
		}
		if actions.Valid {
			r.Actions = json.RawMessage(actions.String)
		}
		if conds.Valid {
			r.Conditions = json.RawMessage(conds.String)
		}
		if pattern.Valid {
			r.Pattern = &pattern.String
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func nullRaw(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// UpdatePushRules implements storage.PushRuleStore.
func (s *Store) UpdatePushRules(ctx context.Context, user id.UserID, fn func([]storage.PushRule) ([]storage.PushRule, error)) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		old, err := pushRules(ctx, tx, user)
		if err != nil {
			return err
		}
		rules, err := fn(old)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM push_rules WHERE user_id = $1`, string(user)); err != nil {
			return err
		}
		for _, r := range rules {
			var enabled any
			if r.Enabled != nil {
				enabled = *r.Enabled
			}
			var pattern any
			if r.Pattern != nil {
				pattern = *r.Pattern
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO push_rules (user_id, kind, rule_id, priority, is_default, enabled, actions, conditions, pattern)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, string(user), r.Kind, r.RuleID, r.Priority, r.Default,
				enabled, nullRaw(r.Actions), nullRaw(r.Conditions), pattern)
			if err != nil {
				return fmt.Errorf("store push rule %s: %w", r.RuleID, err)
			}
		}
		// The m.push_rules account data row marks the change for /sync; its
		// content is computed from the rules when it is read.
		_, err = putAccountData(ctx, tx, user, "", "m.push_rules", json.RawMessage(`{}`))
		return err
	})
}
