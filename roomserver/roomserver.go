// Package roomserver is the one component that accepts room events: it builds
// and signs local events, authorises them with the auth rules, stores them in
// the event DAG and computes room state. Other components read rooms through
// its exported methods and subscribe to committed events through Deps.OnEvent.
package roomserver

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/storage"
)

// Deps is what the roomserver needs.
type Deps struct {
	Store      storage.Store
	Config     *config.Config
	SigningKey *federation.SigningKey
	Log        *zap.Logger
	// OnEvent is called after each event is committed, in commit order per
	// room, outside the room's write lock (the next write into the room
	// proceeds meanwhile) and before the sender's request returns.
	OnEvent func(OutputEvent)
	// Notifications, when set, is called for each locally built event under
	// the room's write lock, just before the event is persisted (StreamPos is
	// not yet known). When ok, the returned notifications are stored in the
	// same transaction as the event and its OutputEvent has PushEvaluated set;
	// otherwise the subscriber evaluates push rules after the commit.
	Notifications NotificationsFunc
	// Keys looks up remote servers' signing keys (for third-party invites and
	// remote events). Nil means only this server's own key is known.
	Keys pdu.GetKeyFunc
	// MaxCachedRooms bounds the in-memory room state cache (default 4096 rooms).
	MaxCachedRooms int
	// MaxCachedState bounds the state events held by the cache over all rooms
	// (default 200000); large rooms are evicted first when it is exceeded.
	MaxCachedState int
}

// Server is the roomserver.
type Server struct {
	store      storage.Store
	cfg        *config.Config
	serverName string
	key        *federation.SigningKey
	log        *zap.Logger
	onEvent    func(OutputEvent)
	// stateVers numbers room state versions (room.stateVer).
	stateVers atomic.Uint64
	notifs    NotificationsFunc
	keys      pdu.GetKeyFunc
	remote    Remote
	maxRooms  int
	maxState  int

	// mu guards rooms (the map, not the entries: each room has its own lock).
	mu    sync.Mutex
	rooms map[id.RoomID]*room
	// cachedState approximates the number of state events held by the cache.
	cachedState atomic.Int64

	// lastPos is the newest committed stream position seen by this process.
	lastPos atomic.Int64
}

// New builds the roomserver.
func New(d Deps) *Server {
	s := &Server{
		store: d.Store, cfg: d.Config, serverName: d.Config.ServerName, key: d.SigningKey,
		log: d.Log, onEvent: d.OnEvent, notifs: d.Notifications, keys: d.Keys, maxRooms: d.MaxCachedRooms,
		rooms: make(map[id.RoomID]*room),
	}
	if s.maxRooms <= 0 {
		s.maxRooms = 4096
	}
	s.maxState = d.MaxCachedState
	if s.maxState <= 0 {
		s.maxState = 200000
	}
	if s.onEvent == nil {
		s.onEvent = func(OutputEvent) {}
	}
	return s
}

// SetOnEvent replaces the subscriber callback. Call it before serving requests.
func (s *Server) SetOnEvent(f func(OutputEvent)) { s.onEvent = f }

// NotificationsFunc computes the notifications of a local event about to be
// persisted (see Deps.Notifications). stateVer identifies the room state the
// event is authorised against: it changes whenever that state changes,
// including when another process sharing the database changed it (the room
// is then reloaded), so a cache keyed by it is never stale; 0 means unknown.
type NotificationsFunc func(ctx context.Context, ev *storage.Event, stateVer uint64) (notes []storage.Notification, ok bool)

// SetNotifications replaces the Deps.Notifications hook. Call it before serving requests.
func (s *Server) SetNotifications(f NotificationsFunc) { s.notifs = f }

// ServerName is the local server name.
func (s *Server) ServerName() string { return s.serverName }

// RoomVersions returns the configured default room version and every supported
// version marked "stable", for /capabilities.
func (s *Server) RoomVersions() (id.RoomVersion, map[id.RoomVersion]string) {
	return RoomVersions(s.cfg.Rooms.DefaultVersion)
}

// stateEntry is one current state event in the cache.
type stateEntry struct {
	id  id.EventID
	pdu *pdu.PDU
	// ref is the reference hash of room v1/v2 events (nil otherwise).
	ref []byte
}

// room is the cached current state of one room. mu serialises every write
// into the room, so concurrent local sends never fork the DAG; it also guards
// every field below. Different rooms proceed in parallel.
type room struct {
	mu sync.Mutex
	// pubMu orders the publication of committed events (see inRoom).
	pubMu   sync.Mutex
	id      id.RoomID
	version id.RoomVersion
	// evicted is set when the entry left the cache; a writer that locked an
	// evicted entry must fetch a fresh one.
	evicted     bool
	state       map[storage.StateKeyTuple]stateEntry
	extremities []id.EventID
	// refs holds the reference hashes of v1/v2 extremities.
	refs  map[id.EventID][]byte
	depth int64
	// stateVer is a process-wide unique number of the state in the cache
	// entry, renewed by every change of it (see NotificationsFunc).
	stateVer uint64
	// servers caches the servers with joined members (JoinedServers),
	// dropped whenever a membership change is committed.
	servers serversCache
}

// serversCache holds a room's joined servers. gen moves on every
// invalidation so that a lookup that raced with a membership change does
// not store what it read before the change.
type serversCache struct {
	mu      sync.Mutex
	gen     uint64
	valid   bool
	servers []string
}

// get returns the cached servers (ok false when not cached) and the generation to pass to set.
func (c *serversCache) get() (servers []string, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.servers), c.gen, c.valid
}

// set caches servers read at generation gen, unless invalidated since.
func (c *serversCache) set(servers []string, gen uint64) {
	c.mu.Lock()
	if c.gen == gen {
		c.servers, c.valid = slices.Clone(servers), true
	}
	c.mu.Unlock()
}

func (c *serversCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.valid, c.servers = false, nil
	c.mu.Unlock()
}

// lockRoom returns the room's cache entry, locked. It loads the room from
// storage when it is not cached; ErrRoomNotFound if the room is unknown.
func (s *Server) lockRoom(ctx context.Context, roomID id.RoomID) (*room, error) {
	for {
		s.mu.Lock()
		r := s.rooms[roomID]
		if r == nil {
			s.evictLocked()
			r = &room{id: roomID}
			s.rooms[roomID] = r
		}
		s.mu.Unlock()
		r.mu.Lock()
		if r.evicted {
			r.mu.Unlock()
			continue
		}
		if r.state == nil {
			if err := s.loadRoom(ctx, r); err != nil {
				s.mu.Lock()
				if s.rooms[roomID] == r {
					delete(s.rooms, roomID)
				}
				r.evicted = true
				s.mu.Unlock()
				r.mu.Unlock()
				return nil, err
			}
		}
		return r, nil
	}
}

// evictLocked drops idle rooms when the cache holds too many rooms or state
// events, down to three quarters of the limits. s.mu must be held.
func (s *Server) evictLocked() {
	over := func(frac int) bool {
		return len(s.rooms) >= s.maxRooms*frac/4 || s.cachedState.Load() >= int64(s.maxState*frac/4)
	}
	if !over(4) {
		return
	}
	for rid, r := range s.rooms {
		if !over(3) {
			return
		}
		if r.mu.TryLock() {
			r.evicted = true
			s.cachedState.Add(-int64(len(r.state)))
			delete(s.rooms, rid)
			r.mu.Unlock()
		}
	}
}

// DropRoom removes a room from the cache after its data was deleted from
// storage (an administrator's purge): the next request reloads it and finds
// the room gone instead of writing into the cached state.
func (s *Server) DropRoom(roomID id.RoomID) { s.dropRoom(roomID) }

// forget drops a room from the cache (after a failed write whose effects are
// unknown). r must be locked.
func (s *Server) forget(r *room) {
	s.mu.Lock()
	if s.rooms[r.id] == r {
		delete(s.rooms, r.id)
		s.cachedState.Add(-int64(len(r.state)))
	}
	s.mu.Unlock()
	r.evicted = true
}

func (s *Server) loadRoom(ctx context.Context, r *room) error {
	info, err := s.store.GetRoom(ctx, r.id)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrRoomNotFound
	} else if err != nil {
		return err
	}
	r.version = info.Version
	evs, err := s.store.CurrentState(ctx, r.id)
	if err != nil {
		return fmt.Errorf("load state of %s: %w", r.id, err)
	}
	r.servers.invalidate()
	r.stateVer = s.stateVers.Add(1)
	r.state = make(map[storage.StateKeyTuple]stateEntry, len(evs))
	for _, ev := range evs {
		p, ref, err := parseEvent(r.version, ev.JSON)
		if err != nil {
			return fmt.Errorf("parse %s: %w", ev.EventID, err)
		}
		r.state[storage.StateKeyTuple{Type: ev.Type, StateKey: *ev.StateKey}] = stateEntry{id: ev.EventID, pdu: p, ref: ref}
	}
	r.extremities, err = s.store.ForwardExtremities(ctx, r.id)
	if err != nil {
		return err
	}
	prev, err := s.store.GetEvents(ctx, r.extremities)
	if err != nil {
		return err
	}
	r.refs = map[id.EventID][]byte{}
	for _, ev := range prev {
		r.depth = max(r.depth, ev.Depth)
		if isV1(r.version) {
			_, ref, err := parseEvent(r.version, ev.JSON)
			if err != nil {
				return fmt.Errorf("parse %s: %w", ev.EventID, err)
			}
			r.refs[ev.EventID] = ref
		}
	}
	s.cachedState.Add(int64(len(r.state)))
	return nil
}

func parsePDU(b []byte) (*pdu.PDU, error) {
	var p pdu.PDU
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Position is the newest stream position (the PDU stream of /sync).
func (s *Server) Position(ctx context.Context) (int64, error) {
	pos, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return 0, err
	}
	return pos, nil
}

func nowMS() int64 { return time.Now().UnixMilli() }
