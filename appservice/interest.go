package appservice

import (
	"context"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/asapi"
	"parley/storage"
)

// roomFacts is what decides whether a service is interested in a room: its
// joined members (with the stream position of their join) and its local aliases.
type roomFacts struct {
	joined  []storage.Membership
	aliases []id.RoomAlias
}

// loadRoomFacts reads room's joined members and (when some service has an
// aliases namespace) its aliases.
func (s *Sender) loadRoomFacts(ctx context.Context, room id.RoomID) (*roomFacts, error) {
	ms, err := s.store.RoomMemberships(ctx, room)
	if err != nil {
		return nil, err
	}
	f := &roomFacts{}
	for _, m := range ms {
		if m.Membership == string(event.MembershipJoin) {
			f.joined = append(f.joined, m)
		}
	}
	if s.aliasNamespaces {
		if f.aliases, err = s.store.RoomAliases(ctx, room); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// interestedInRoom says whether as wants the events of room at stream
// position pos: the room ID or one of its aliases is in its namespaces, or
// one of its users had joined by then. (Memberships are the current ones: a
// user who joined, left and joined again counts from the last join.)
func (s *Sender) interestedInRoom(as *asapi.Service, room id.RoomID, f *roomFacts, pos int64) bool {
	if as.InRoomNamespace(room) {
		return true
	}
	for _, a := range f.aliases {
		if as.InAliasNamespace(a) {
			return true
		}
	}
	for _, m := range f.joined {
		if m.StreamPos <= pos && as.IsInterestedInUser(m.UserID) {
			return true
		}
	}
	return false
}

// interestedInEvent says whether as gets ev: its sender, or the target of a
// membership change, is one of the service's users, or the service is
// interested in the room. The room's facts (members, aliases) are loaded
// only when the cheaper checks say no.
func (s *Sender) interestedInEvent(as *asapi.Service, ev *storage.Event, facts func() (*roomFacts, error)) (bool, error) {
	if as.IsInterestedInUser(ev.Sender) || as.InRoomNamespace(ev.RoomID) {
		return true, nil
	}
	if ev.Type == event.StateMember.Type && ev.StateKey != nil && as.IsInterestedInUser(id.UserID(*ev.StateKey)) {
		return true, nil
	}
	f, err := facts()
	if err != nil {
		return false, err
	}
	return s.interestedInRoom(as, ev.RoomID, f, ev.StreamPos), nil
}

// factsCacheTTL bounds how stale the room facts used for ephemeral events
// may be: membership changes through this process clear them at once, other
// processes' changes and new aliases are seen after at most this long.
const factsCacheTTL = 30 * time.Second

// factsCache keeps room facts for ephemeral events, which come often and
// must not cost a database read each.
type factsCache struct {
	mu      sync.Mutex // guards entries
	entries map[id.RoomID]cachedFacts
}

type cachedFacts struct {
	f       *roomFacts
	expires time.Time
}

func (c *factsCache) get(room id.RoomID) *roomFacts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[room]; ok && time.Now().Before(e.expires) {
		return e.f
	}
	return nil
}

func (c *factsCache) put(room id.RoomID, f *roomFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 10000 {
		c.entries = map[id.RoomID]cachedFacts{}
	}
	c.entries[room] = cachedFacts{f: f, expires: time.Now().Add(factsCacheTTL)}
}

func (c *factsCache) forget(room id.RoomID) {
	c.mu.Lock()
	delete(c.entries, room)
	c.mu.Unlock()
}

// cachedRoomFacts returns room's facts from the cache, loading them when missing.
func (s *Sender) cachedRoomFacts(ctx context.Context, room id.RoomID) (*roomFacts, error) {
	if f := s.facts.get(room); f != nil {
		return f, nil
	}
	f, err := s.loadRoomFacts(ctx, room)
	if err != nil {
		return nil, err
	}
	s.facts.put(room, f)
	return f, nil
}
