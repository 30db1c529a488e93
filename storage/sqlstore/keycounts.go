package sqlstore

import (
	"maps"
	"slices"
	"sync"

	"maunium.net/go/mautrix/id"
)

// keyCountCache keeps each device's one-time key counts and unused fallback
// key types, which every /sync of the device reports, on SQLite (where this
// process makes every write). Writes of keys and deletions of devices drop
// it all once committed; gen keeps a count read before such a write from
// being stored after it.
type keyCountCache struct {
	mu      sync.Mutex
	gen     uint64
	entries map[keyCountKey]keyCountEntry
}

type keyCountKey struct {
	user   id.UserID
	device id.DeviceID
}

type keyCountEntry struct {
	counts   map[string]int
	fallback []string
}

// maxKeyCountCache bounds keyCountCache; it is cleared when full.
const maxKeyCountCache = 10000

func (c *keyCountCache) get(k keyCountKey) (keyCountEntry, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok {
		e = keyCountEntry{counts: maps.Clone(e.counts), fallback: slices.Clone(e.fallback)}
	}
	return e, c.gen, ok
}

func (c *keyCountCache) put(k keyCountKey, e keyCountEntry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.entries == nil || len(c.entries) >= maxKeyCountCache {
		c.entries = map[keyCountKey]keyCountEntry{}
	}
	c.entries[k] = keyCountEntry{counts: maps.Clone(e.counts), fallback: slices.Clone(e.fallback)}
}

func (c *keyCountCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}
