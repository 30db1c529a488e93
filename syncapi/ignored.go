package syncapi

import (
	"context"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ignoredUsers reads the user's m.ignored_user_list account data: the users
// whose invites and non-state events /sync must not send (spec: Ignoring Users).
func ignoredUsers(ctx context.Context, store storage.AccountDataStore, user id.UserID) (map[id.UserID]bool, error) {
	raw, err := store.GetAccountData(ctx, user, "", "m.ignored_user_list")
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var c struct {
		IgnoredUsers map[id.UserID]json.RawMessage `json:"ignored_users"`
	}
	if json.Unmarshal(raw, &c) != nil || len(c.IgnoredUsers) == 0 {
		return nil, nil
	}
	out := make(map[id.UserID]bool, len(c.IgnoredUsers))
	for u := range c.IgnoredUsers {
		out[u] = true
	}
	return out, nil
}
