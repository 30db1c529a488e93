package syncapi

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// Membership is what the inbox needs to know about room membership. The
// roomserver satisfies it; MemoryRooms stands in until one is wired.
type Membership interface {
	// JoinedRooms lists the rooms user is joined to.
	JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error)
	// IsJoined reports whether user is joined to room.
	IsJoined(ctx context.Context, room id.RoomID, user id.UserID) (bool, error)
	// JoinedMembers lists the users (local and remote) joined to room.
	JoinedMembers(ctx context.Context, room id.RoomID) ([]id.UserID, error)
}

// EventLocator is optionally implemented by the Membership: it returns an event's
// stream position in room, or storage.ErrNotFound. Receipts use it to reject
// unknown events and to reset notification counts up to the event; without
// it a receipt resets every count of the room.
type EventLocator interface {
	EventStreamPos(ctx context.Context, room id.RoomID, event id.EventID) (int64, error)
}

// InboxStore is the storage the inbox uses.
type InboxStore interface {
	storage.AccountDataStore
	storage.FilterStore
	storage.ReceiptStore
	storage.PushRuleStore
	storage.NotificationStore
}

// InboxDeps is what NewInbox needs.
type InboxDeps struct {
	Config *config.Config
	Store  InboxStore
	// RoomStore reads room events, state and memberships for push rule
	// evaluation of events handed to OnRoomEvent; nil without a roomserver.
	RoomStore storage.RoomStore
	// AfterEvent is called for each event given to OnRoomEvent once its
	// notifications are stored (the PDU stream's OnEvent, which wakes /sync).
	AfterEvent func(roomserver.OutputEvent)
	Notifier   *Notifier
	Rooms      Membership
	Auth       authn.Authenticator
	// HTTPClient sends push notifications; http.DefaultClient if nil.
	HTTPClient *http.Client
	Log        *zap.Logger
}

// Inbox is everything of /sync except room events: account data, tags,
// filters, typing, receipts, presence, push rules, notification counts,
// /notifications and pushers. It serves their endpoints and provides their
// sync streams.
type Inbox struct {
	cfg      *config.Config
	store    InboxStore
	notifier *Notifier
	rooms    Membership
	auth     authn.Authenticator
	log      *zap.Logger

	// rulesMu guards rulesCache, users' compiled push rules.
	rulesMu    sync.Mutex
	rulesCache map[id.UserID]*pushrules.PushRuleset

	roomStore  storage.RoomStore
	afterEvent func(roomserver.OutputEvent)
	// roomCtxMu guards roomCtx, the push context of rooms.
	roomCtxMu sync.Mutex
	roomCtx   map[id.RoomID]*roomPushContext
	// roomCtxGen counts invalidations of roomCtx: a context loaded across one
	// is not cached (it may predate the state change).
	roomCtxGen uint64
	// done is closed by Close.
	done chan struct{}

	// pushersMu guards pushers (users' pushers, nil slice: none) and pushersGen.
	pushersMu  sync.Mutex
	pushers    map[id.UserID][]storage.Pusher
	pushersGen int64

	typing *typingState
	// typingLink shares typing changes with other processes (LinkTyping).
	typingLink atomic.Pointer[typingLink]
	// eduSink sends local typing and receipts to other servers (SetEDUSink).
	eduSink EDUSink
	// ephemeralSink passes ephemeral events to application services (SetEphemeralSink).
	ephemeralSink EphemeralSink
	presence      *presenceState
	pusher        *pushSender

	// wg tracks background goroutines; stop ends them.
	wg   sync.WaitGroup
	stop context.CancelFunc
}

// NewInbox builds the inbox. Call Start to run its background work and Close to stop it.
func NewInbox(d InboxDeps) *Inbox {
	in := &Inbox{cfg: d.Config, store: d.Store, notifier: d.Notifier, rooms: d.Rooms, auth: d.Auth, log: d.Log,
		rulesCache: map[id.UserID]*pushrules.PushRuleset{}, pushers: map[id.UserID][]storage.Pusher{},
		roomStore: d.RoomStore, afterEvent: d.AfterEvent, roomCtx: map[id.RoomID]*roomPushContext{}, done: make(chan struct{})}
	if in.rooms == nil {
		in.rooms = NewMemoryRooms()
	}
	in.typing = newTypingState(in)
	in.presence = newPresenceState(in)
	client := d.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	in.pusher = newPushSender(in, client)
	return in
}

// Start runs the presence timers and the push sender until Close.
func (in *Inbox) Start(ctx context.Context) {
	ctx, in.stop = context.WithCancel(ctx)
	in.wg.Add(3)
	go func() { defer in.wg.Done(); in.flushCaches(ctx) }()
	go func() { defer in.wg.Done(); in.presence.run(ctx) }()
	go func() { defer in.wg.Done(); in.pusher.run(ctx) }()
}

// cacheTTL bounds how long the push caches (compiled rules, room push
// contexts, pushers) live. Changes made through this process clear them at
// once; changes made by another process sharing the database are seen after
// at most cacheTTL.
const cacheTTL = 30 * time.Second

// flushCaches empties the push caches every cacheTTL until ctx ends.
func (in *Inbox) flushCaches(ctx context.Context) {
	t := time.NewTicker(cacheTTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			in.rulesMu.Lock()
			clear(in.rulesCache)
			in.rulesMu.Unlock()
			in.roomCtxMu.Lock()
			clear(in.roomCtx)
			in.roomCtxGen++
			in.roomCtxMu.Unlock()
			in.forgetPushers()
		}
	}
}

// Close stops background work and waits for it.
func (in *Inbox) Close() {
	select {
	case <-in.done:
		return
	default:
		close(in.done)
	}
	if in.stop != nil {
		in.stop()
	}
	in.typing.close()
	in.wg.Wait()
}

// Streams returns the inbox's sync streams, in the order /sync should fill
// them (after the PDU stream: the notif stream decorates rooms others added).
func (in *Inbox) Streams() []Stream {
	return []Stream{
		&typingStream{in},
		&receiptStream{in},
		&accountDataStream{in},
		&presenceStream{in},
		&notifStream{in},
	}
}

// Observer returns the SyncObserver that drives presence from /sync.
func (in *Inbox) Observer() SyncObserver { return in.presence }

func (in *Inbox) authed(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	r.Handle(path, httputil.Wrap(in.log, name, authn.Required(in.auth, h))).Methods(methods...)
}

// Register attaches the inbox endpoints.
func (in *Inbox) Register(root *mux.Router) {
	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()
	in.authed(v3, "/user/{userId}/account_data/{type}", "get_account_data", in.getAccountData, http.MethodGet)
	in.authed(v3, "/user/{userId}/account_data/{type}", "put_account_data", in.putAccountData, http.MethodPut)
	in.authed(v3, "/user/{userId}/rooms/{roomId}/account_data/{type}", "get_room_account_data", in.getAccountData, http.MethodGet)
	in.authed(v3, "/user/{userId}/rooms/{roomId}/account_data/{type}", "put_room_account_data", in.putAccountData, http.MethodPut)
	in.authed(v3, "/user/{userId}/rooms/{roomId}/tags", "get_tags", in.getTags, http.MethodGet)
	in.authed(v3, "/user/{userId}/rooms/{roomId}/tags/{tag}", "put_tag", in.putTag, http.MethodPut)
	in.authed(v3, "/user/{userId}/rooms/{roomId}/tags/{tag}", "delete_tag", in.deleteTag, http.MethodDelete)
	in.authed(v3, "/user/{userId}/filter", "create_filter", in.createFilter, http.MethodPost)
	in.authed(v3, "/user/{userId}/filter/{filterId}", "get_filter", in.getFilter, http.MethodGet)
	in.authed(v3, "/rooms/{roomId}/typing/{userId}", "typing", in.putTyping, http.MethodPut)
	in.authed(v3, "/rooms/{roomId}/receipt/{receiptType}/{eventId}", "receipt", in.postReceipt, http.MethodPost)
	in.authed(v3, "/rooms/{roomId}/read_markers", "read_markers", in.postReadMarkers, http.MethodPost)
	in.authed(v3, "/presence/{userId}/status", "get_presence", in.getPresence, http.MethodGet)
	in.authed(v3, "/presence/{userId}/status", "put_presence", in.putPresence, http.MethodPut)
	in.authed(v3, "/pushrules/{path:.*}", "push_rules", in.pushRulesPath, http.MethodGet, http.MethodPut, http.MethodDelete)
	in.authed(v3, "/notifications", "notifications", in.getNotifications, http.MethodGet)
	in.authed(v3, "/pushers", "get_pushers", in.getPushers, http.MethodGet)
	in.authed(v3, "/pushers/set", "set_pushers", in.setPusher, http.MethodPost)
}

// isLocal reports whether user belongs to this server.
func (in *Inbox) isLocal(user id.UserID) bool {
	return user.Homeserver() == in.cfg.ServerName
}

// checkSelf answers 403 unless the path's userId is the requester.
func checkSelf(r *http.Request, dev *authn.Device, what string) (id.UserID, error) {
	user := id.UserID(httputil.PathVar(r, "userId"))
	if user != dev.UserID {
		return user, httputil.Forbidden("cannot %s for other users", what)
	}
	return user, nil
}

// joinedSet returns the rooms user is joined to as a set.
func (in *Inbox) joinedSet(ctx context.Context, user id.UserID) (map[id.RoomID]struct{}, []id.RoomID, error) {
	rooms, err := in.rooms.JoinedRooms(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	set := make(map[id.RoomID]struct{}, len(rooms))
	for _, r := range rooms {
		set[r] = struct{}{}
	}
	return set, rooms, nil
}

// joinedIn is joinedSet for the user of resp, read once per response.
func (in *Inbox) joinedIn(ctx context.Context, user id.UserID, resp *Response) (map[id.RoomID]struct{}, []id.RoomID, error) {
	if resp.joined == nil {
		set, list, err := in.joinedSet(ctx, user)
		if err != nil {
			return nil, nil, err
		}
		resp.joined = &joinedRooms{set: set, list: list}
	}
	return resp.joined.set, resp.joined.list, nil
}

// wakeRoomMembers wakes the local joined members of room.
func (in *Inbox) wakeRoomMembers(ctx context.Context, room id.RoomID, extra ...id.UserID) {
	members, err := in.rooms.JoinedMembers(ctx, room)
	if err != nil {
		in.log.Warn("list room members to wake", zap.String("room_id", string(room)), zap.Error(err))
	}
	in.notifier.WakeUsers(append(members, extra...)...)
	in.notifier.WakeRoom(room)
}
