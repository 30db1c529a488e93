package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

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

// ignoredCache keeps users' ignored lists for as long as no account data
// changed (the account data stream, global to the server, has not moved).
type ignoredCache struct {
	mu      sync.Mutex
	entries map[id.UserID]ignoredEntry
}

type ignoredEntry struct {
	pos   int64
	users map[id.UserID]bool
}

// maxIgnoredCache bounds ignoredCache; it is cleared when full.
const maxIgnoredCache = 10000

// get returns user's ignored users as of upto (read from storage when the
// account data stream moved since they were cached, or upto is unknown).
func (c *ignoredCache) get(ctx context.Context, store storage.AccountDataStore, user id.UserID, upto Token) (map[id.UserID]bool, error) {
	pos, known := upto[StreamAccountData]
	if known {
		c.mu.Lock()
		e, ok := c.entries[user]
		c.mu.Unlock()
		if ok && e.pos == pos {
			return e.users, nil
		}
	}
	users, err := ignoredUsers(ctx, store, user)
	if err != nil || !known {
		return users, err
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxIgnoredCache {
		c.entries = map[id.UserID]ignoredEntry{}
	}
	c.entries[user] = ignoredEntry{pos: pos, users: users}
	c.mu.Unlock()
	return users, nil
}
