package sqlstore

import (
	"context"
	"database/sql"
	"sync"

	"parley/storage"
)

// tokenCache keeps access-token lookups (DeviceByAccessToken, the query of
// every authenticated request) in memory. Only on SQLite, where this process
// is the database's only writer, so every change to tokens, devices and
// accounts goes through the methods that invalidate it (authWrite);
// processes sharing a PostgreSQL database always ask the database.
//
// An invalidation clears every entry and moves gen on, and a lookup stores
// its result only if gen did not move while it queried: a token revoked
// while a lookup was under way is never cached as valid.
type tokenCache struct {
	mu sync.Mutex
	// gen counts invalidations.
	gen uint64
	m   map[string]cachedToken
	// byDevice lists the cached token hashes of each device.
	byDevice map[deviceKey][]string
}

type deviceKey struct{ user, device string }

type cachedToken struct {
	dev     storage.Device
	expires int64
}

// maxCachedTokens bounds the cache; it is cleared when full.
const maxCachedTokens = 10000

func (c *tokenCache) get(hash []byte) (cachedToken, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(hash)]
	return e, c.gen, ok
}

func (c *tokenCache) put(hash []byte, e cachedToken, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedTokens {
		c.m = make(map[string]cachedToken)
		c.byDevice = make(map[deviceKey][]string)
	}
	c.m[string(hash)] = e
	k := deviceKey{string(e.dev.UserID), string(e.dev.DeviceID)}
	c.byDevice[k] = append(c.byDevice[k], string(hash))
}

// seen records a device's new last-seen time and address in its cached
// entries (not an invalidation: no token changed).
func (c *tokenCache) seen(user, device string, ts int64, ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.byDevice[deviceKey{user, device}] {
		if e, ok := c.m[h]; ok {
			e.dev.LastSeenTS, e.dev.LastSeenIP = ts, ip
			c.m[h] = e
		}
	}
}

func (c *tokenCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.m, c.byDevice = nil, nil
	c.mu.Unlock()
}

// authWrite runs a write transaction that changes access tokens, devices or
// accounts, then invalidates the token cache (whether or not it committed).
func (s *Store) authWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := s.db.Write(ctx, fn)
	s.tokens.invalidate()
	s.keyCounts.invalidate() // devices (and their keys) may be gone
	return err
}
