package syncapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Simplified sliding sync (MSC4186) on its unstable endpoint,
// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync. The
// request and response shapes are those Element X and Synapse use on that
// endpoint (lists with "ranges", required_state as [type, state_key] pairs,
// "timeline" and "invite_state" in room results); the newer field names of
// the MSC text ("range", {include, exclude, lazy_members}, "is_invited") are
// accepted too.

// codeUnknownPos is MSC4186's error for an expired or unknown pos: the client
// starts a new connection.
const codeUnknownPos = "M_UNKNOWN_POS"

// maxSlidingLists and maxTimelineLimit bound one request.
const (
	maxSlidingLists    = 100
	maxSubscriptions   = 1000
	maxTimelineLimit   = 100
	maxConnsPerDevice  = 10
	defaultConnTimeout = 30 * time.Minute
)

// SlidingSyncDeps is what NewSlidingSync needs.
type SlidingSyncDeps struct {
	Auth     authn.Authenticator
	Notifier *Notifier
	// PDU is the room event stream whose reads sliding sync reuses.
	PDU *PDUStream
	// Inbox provides account data, receipts, typing and unread counts.
	Inbox *Inbox
	// Store holds the batched room reads.
	Store storage.SlidingSyncStore
	// Streams are every /sync stream: their positions make up pos, and the
	// to-device and device-list streams (when wired) feed the extensions.
	Streams []Stream
	// ConnectionTTL is how long an idle connection is kept (30 minutes if 0).
	ConnectionTTL time.Duration
	Observer      SyncObserver
	Log           *zap.Logger
}

// SlidingSync serves MSC4186 sliding sync.
type SlidingSync struct {
	d     SlidingSyncDeps
	conns *connStore
}

// NewSlidingSync builds the sliding sync endpoint.
func NewSlidingSync(d SlidingSyncDeps) *SlidingSync {
	if d.ConnectionTTL <= 0 {
		d.ConnectionTTL = defaultConnTimeout
	}
	return &SlidingSync{d: d, conns: newConnStore(d.ConnectionTTL)}
}

// Register attaches the endpoint.
func (s *SlidingSync) Register(root *mux.Router) {
	root.Handle("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
		httputil.Wrap(s.d.Log, "sliding_sync", authn.Required(s.d.Auth, s.sync))).Methods(http.MethodPost)
}

// ssRequest is the request body (pos, timeout and set_presence may also be
// query parameters, as on the unstable endpoint).
type ssRequest struct {
	ConnID            string                      `json:"conn_id"`
	Pos               string                      `json:"pos"`
	Timeout           *int64                      `json:"timeout"`
	SetPresence       string                      `json:"set_presence"`
	Lists             map[string]*ssList          `json:"lists"`
	RoomSubscriptions map[id.RoomID]*ssRoomConfig `json:"room_subscriptions"`
	// UnsubscribeRooms ends subscriptions of earlier requests (matrix-js-sdk
	// sends each subscription once and keeps it until it unsubscribes).
	UnsubscribeRooms []id.RoomID  `json:"unsubscribe_rooms"`
	Extensions       ssExtensions `json:"extensions"`
}

// ssRoomConfig is a "room config": timeline_limit and required_state.
type ssRoomConfig struct {
	TimelineLimit *int          `json:"timeline_limit"`
	RequiredState requiredState `json:"required_state"`
}

// ssList is a SyncListConfig.
type ssList struct {
	ssRoomConfig
	Ranges  [][2]int   `json:"ranges"`
	Range   *[2]int    `json:"range"`
	Filters *ssFilters `json:"filters"`
}

// ssFilters is a SlidingRoomFilter.
type ssFilters struct {
	IsDM         *bool       `json:"is_dm"`
	Spaces       []id.RoomID `json:"spaces"`
	IsEncrypted  *bool       `json:"is_encrypted"`
	IsInvite     *bool       `json:"is_invite"`
	IsInvited    *bool       `json:"is_invited"`
	RoomTypes    []*string   `json:"room_types"`
	NotRoomTypes []*string   `json:"not_room_types"`
	Tags         []string    `json:"tags"`
	NotTags      []string    `json:"not_tags"`
}

func (f *ssFilters) invited() *bool {
	if f.IsInvited != nil {
		return f.IsInvited
	}
	return f.IsInvite
}

// parseSlidingRequest reads and validates the body and query parameters.
func parseSlidingRequest(r *http.Request) (*ssRequest, time.Duration, error) {
	var req ssRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return nil, 0, err
	}
	q := r.URL.Query()
	if v := q.Get("pos"); v != "" {
		req.Pos = v
	}
	if v := q.Get("set_presence"); v != "" {
		req.SetPresence = v
	}
	if v := q.Get("timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, 0, httputil.InvalidParam("timeout must be a non-negative integer")
		}
		req.Timeout = &ms
	}
	var timeout time.Duration
	if req.Timeout != nil {
		if *req.Timeout < 0 {
			return nil, 0, httputil.InvalidParam("timeout must be a non-negative integer")
		}
		timeout = min(time.Duration(*req.Timeout)*time.Millisecond, maxTimeout)
	}
	switch req.SetPresence {
	case "":
		req.SetPresence = "online"
	case "online", "offline", "unavailable":
	default:
		return nil, 0, httputil.InvalidParam("set_presence must be online, offline or unavailable")
	}
	if len(req.Lists) > maxSlidingLists {
		return nil, 0, httputil.InvalidParam("at most %d lists", maxSlidingLists)
	}
	for name, l := range req.Lists {
		if l == nil {
			return nil, 0, httputil.BadJSON("list %q must be an object", name)
		}
		if err := l.validate(name); err != nil {
			return nil, 0, err
		}
		if l.Range != nil {
			l.Ranges = append(l.Ranges, *l.Range)
		}
		for _, rg := range l.Ranges {
			if rg[0] < 0 || rg[1] < rg[0] {
				return nil, 0, httputil.InvalidParam("list %q: invalid range [%d, %d]", name, rg[0], rg[1])
			}
		}
	}
	if len(req.RoomSubscriptions) > maxSubscriptions {
		return nil, 0, httputil.InvalidParam("at most %d room subscriptions", maxSubscriptions)
	}
	for room, sub := range req.RoomSubscriptions {
		if sub == nil {
			return nil, 0, httputil.BadJSON("room subscription %s must be an object", room)
		}
		if err := sub.validate(string(room)); err != nil {
			return nil, 0, err
		}
	}
	return &req, timeout, nil
}

func (c *ssRoomConfig) validate(name string) error {
	if c.TimelineLimit != nil && *c.TimelineLimit < 0 {
		return httputil.InvalidParam("%s: timeline_limit must not be negative", name)
	}
	return nil
}

func (c *ssRoomConfig) limit() int {
	if c.TimelineLimit == nil {
		return 0
	}
	return min(*c.TimelineLimit, maxTimelineLimit)
}

// sync handles POST .../org.matrix.simplified_msc3575/sync.
func (s *SlidingSync) sync(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	ctx := r.Context()
	req, timeout, err := parseSlidingRequest(r)
	if err != nil {
		return err
	}
	key := connKey{user: dev.UserID, device: dev.DeviceID, connID: req.ConnID}
	conn, prev, err := s.conns.lookup(key, req.Pos)
	if err != nil {
		return err
	}
	if s.d.Observer != nil {
		s.d.Observer.SyncStarted(dev, req.SetPresence)
		defer s.d.Observer.SyncEnded(dev)
	}
	// Subscribe before reading positions, so no wake-up is lost in between.
	l := s.d.Notifier.Listen(dev.UserID)
	defer l.Close()
	var deadline <-chan time.Time
	if prev != nil && timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		b := &ssBuild{s: s, dev: dev, req: req, prev: prev}
		resp, next, found, err := b.run(ctx)
		if err != nil {
			return err
		}
		if found || deadline == nil {
			return s.respond(w, conn, next, resp)
		}
		select {
		case <-l.C():
		case <-deadline:
			return s.respond(w, conn, next, resp)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// respond records the connection's new state and writes the response.
func (s *SlidingSync) respond(w http.ResponseWriter, conn *conn, next *connState, resp *ssResponse) error {
	resp.Pos = conn.commit(next)
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	return httputil.WriteRawJSON(w, http.StatusOK, b)
}

// connKey identifies a connection: conn_id is scoped to the user and device.
type connKey struct {
	user   id.UserID
	device id.DeviceID
	connID string
}

// connStore keeps every connection's state in memory. A restart forgets
// them all: clients then get M_UNKNOWN_POS and start again, as they do after
// an idle connection expires (ttl).
type connStore struct {
	ttl time.Duration
	// mu guards conns and lastSweep.
	mu        sync.Mutex
	conns     map[connKey]*conn
	lastSweep time.Time
}

func newConnStore(ttl time.Duration) *connStore {
	return &connStore{ttl: ttl, conns: map[connKey]*conn{}}
}

// conn is one connection. Each response gets a new sequence number; the
// state after it is kept until the client acknowledges a later one by using
// its pos, so a retried request with the same pos sees the same state.
type conn struct {
	nonce string
	// mu guards seq, states and lastUsed.
	mu       sync.Mutex
	seq      int64
	states   map[int64]*connState
	lastUsed time.Time
}

// lookup returns the connection and the state the request continues from
// (nil for a first request, which starts a fresh connection).
func (cs *connStore) lookup(key connKey, pos string) (*conn, *connState, error) {
	now := time.Now()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if now.Sub(cs.lastSweep) > time.Minute || len(cs.conns) > 10000 {
		cs.lastSweep = now
		for k, c := range cs.conns {
			c.mu.Lock()
			idle := now.Sub(c.lastUsed)
			c.mu.Unlock()
			if idle > cs.ttl {
				delete(cs.conns, k)
			}
		}
	}
	if pos == "" {
		cs.limitDevice(key)
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		c := &conn{nonce: hex.EncodeToString(b), states: map[int64]*connState{}, lastUsed: now}
		cs.conns[key] = c
		return c, nil, nil
	}
	unknown := httputil.Errorf(http.StatusBadRequest, codeUnknownPos, "unknown or expired pos; start a new connection")
	nonce, seqStr, ok := strings.Cut(pos, "_")
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	c := cs.conns[key]
	if !ok || err != nil || c == nil || c.nonce != nonce {
		return nil, nil, unknown
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[seq]
	if st == nil || now.Sub(c.lastUsed) > cs.ttl {
		delete(cs.conns, key)
		return nil, nil, unknown
	}
	c.lastUsed = now
	// The client has processed seq: older states are no longer needed.
	for k := range c.states {
		if k < seq {
			delete(c.states, k)
		}
	}
	return c, st, nil
}

// limitDevice drops the least recently used connections of key's device
// beyond maxConnsPerDevice (cs.mu held).
func (cs *connStore) limitDevice(key connKey) {
	var same []connKey
	for k := range cs.conns {
		if k.user == key.user && k.device == key.device && k.connID != key.connID {
			same = append(same, k)
		}
	}
	for len(same) >= maxConnsPerDevice {
		oldest := 0
		for i, k := range same {
			if cs.conns[k].lastUsed.Before(cs.conns[same[oldest]].lastUsed) {
				oldest = i
			}
		}
		delete(cs.conns, same[oldest])
		same = append(same[:oldest], same[oldest+1:]...)
	}
}

// commit stores st as the state after a new response and returns its pos.
func (c *conn) commit(st *connState) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.states[c.seq] = st
	c.lastUsed = time.Now()
	// Requests racing on one connection (a client that cancelled and
	// retried) may leave extra states; keep only the newest few.
	for k := range c.states {
		if k <= c.seq-4 {
			delete(c.states, k)
		}
	}
	return c.nonce + "_" + strconv.FormatInt(c.seq, 10)
}

// connState is what a connection has sent, as of one response. It is never
// changed once stored: a request builds a new one (sharing unchanged rooms).
type connState struct {
	// token holds every stream's position the response covered.
	token Token
	rooms map[id.RoomID]*roomSent
	// counts are the list counts sent.
	counts map[string]int
	// subs are the room subscriptions in force: those of every request on
	// the connection, less the rooms unsubscribed.
	subs map[id.RoomID]*ssRoomConfig
	// activity is the newest activity of the user's joined rooms at token.
	activity map[id.RoomID]storage.RoomActivity
}

// roomSent is what the connection has sent of one room.
type roomSent struct {
	// pos is the PDU stream position up to which the room was sent.
	pos        int64
	membership string
	// limit and stateCfgs are the largest timeline_limit and the
	// required_state configs (canonical forms) the client has the room with;
	// only a config beyond them makes the room be sent again in full.
	stateCfgs map[string]bool
	name      *string
	avatar    *string
	heroes    string
	limit     int
	isDM      bool
	// lazy holds the members whose m.room.member event was sent ($LAZY).
	lazy map[id.UserID]bool
}
