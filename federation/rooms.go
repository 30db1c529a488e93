package federation

import (
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// txnLocks serialises inbound transactions with the same (origin, txn_id),
// so a retried transaction waits for the first and then gets its stored result.
type txnLocks struct {
	// mu guards locks.
	mu    sync.Mutex
	locks map[string]*txnLock
}

type txnLock struct {
	mu   sync.Mutex
	refs int // guarded by txnLocks.mu
}

func newTxnLocks() *txnLocks { return &txnLocks{locks: map[string]*txnLock{}} }

func (l *txnLocks) lock(key string) func() {
	l.mu.Lock()
	m, ok := l.locks[key]
	if !ok {
		m = &txnLock{}
		l.locks[key] = m
	}
	m.refs++
	l.mu.Unlock()
	m.mu.Lock()
	return func() {
		m.mu.Unlock()
		l.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
}

// registerRooms attaches the room endpoints of the federation API.
func (a *API) registerRooms(root *mux.Router) {
	v1 := root.PathPrefix("/_matrix/federation/v1").Subrouter()
	v2 := root.PathPrefix("/_matrix/federation/v2").Subrouter()
	v1.Handle("/query/profile", a.authed("query_profile", a.queryProfile)).Methods(http.MethodGet)
	v1.Handle("/query/directory", a.authed("query_directory", a.queryDirectory)).Methods(http.MethodGet)
	v1.Handle("/make_join/{roomID}/{userID}", a.authed("make_join", a.makeMembership(event.MembershipJoin))).Methods(http.MethodGet)
	v1.Handle("/make_leave/{roomID}/{userID}", a.authed("make_leave", a.makeMembership(event.MembershipLeave))).Methods(http.MethodGet)
	v1.Handle("/make_knock/{roomID}/{userID}", a.authed("make_knock", a.makeMembership(event.MembershipKnock))).Methods(http.MethodGet)
	v1.Handle("/send_knock/{roomID}/{eventID}", a.authed("send_knock", a.sendMembership(event.MembershipKnock))).Methods(http.MethodPut)
	v2.Handle("/send_join/{roomID}/{eventID}", a.authed("send_join", a.sendMembership(event.MembershipJoin))).Methods(http.MethodPut)
	v2.Handle("/send_leave/{roomID}/{eventID}", a.authed("send_leave", a.sendMembership(event.MembershipLeave))).Methods(http.MethodPut)
	v2.Handle("/invite/{roomID}/{eventID}", a.authed("invite", a.invite)).Methods(http.MethodPut)
	v1.Handle("/send_join/{roomID}/{eventID}", a.authed("send_join", a.sendMembershipV1(event.MembershipJoin))).Methods(http.MethodPut)
	v1.Handle("/send_leave/{roomID}/{eventID}", a.authed("send_leave", a.sendMembershipV1(event.MembershipLeave))).Methods(http.MethodPut)
	v1.Handle("/invite/{roomID}/{eventID}", a.authed("invite", a.inviteV1)).Methods(http.MethodPut)
	v1.Handle("/send/{txnID}", a.authed("send_transaction", a.sendTransaction)).Methods(http.MethodPut)
	v1.Handle("/get_missing_events/{roomID}", a.authed("get_missing_events", a.getMissingEvents)).Methods(http.MethodPost)
	v1.Handle("/event/{eventID}", a.authed("get_event", a.getEvent)).Methods(http.MethodGet)
	v1.Handle("/state_ids/{roomID}", a.authed("state_ids", a.stateIDs)).Methods(http.MethodGet)
	v1.Handle("/state/{roomID}", a.authed("state", a.state)).Methods(http.MethodGet)
	v1.Handle("/event_auth/{roomID}/{eventID}", a.authed("event_auth", a.eventAuth)).Methods(http.MethodGet)
	v1.Handle("/backfill/{roomID}", a.authed("backfill", a.backfill)).Methods(http.MethodGet)
	v1.Handle("/timestamp_to_event/{roomID}", a.authed("timestamp_to_event", a.timestampToEvent)).Methods(http.MethodGet)
	v1.Handle("/user/devices/{userID}", a.authed("user_devices", a.userDevices)).Methods(http.MethodGet)
	v1.Handle("/user/keys/query", a.authed("user_keys_query", a.userKeysQuery)).Methods(http.MethodPost)
	v1.Handle("/user/keys/claim", a.authed("user_keys_claim", a.userKeysClaim)).Methods(http.MethodPost)
	v1.Handle("/media/download/{mediaID}", a.authed("media_download", a.mediaDownload)).Methods(http.MethodGet)
	v1.Handle("/media/thumbnail/{mediaID}", a.authed("media_thumbnail", a.mediaThumbnail)).Methods(http.MethodGet)
	a.registerDirectory(v1)
	a.registerThirdParty(v1)
}

// roomErr maps roomserver errors to Matrix errors.
func roomErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, roomserver.ErrRoomNotFound), errors.Is(err, roomserver.ErrNotResident):
		return httputil.NotFound("room not found")
	case errors.Is(err, roomserver.ErrEventNotFound):
		return httputil.NotFound("event not found")
	case errors.Is(err, roomserver.ErrIncompatibleVersion):
		return httputil.Errorf(http.StatusBadRequest, "M_INCOMPATIBLE_ROOM_VERSION", "room version not supported by your server")
	case errors.Is(err, roomserver.ErrForbidden):
		return httputil.Forbidden("%v", err)
	case errors.Is(err, roomserver.ErrBadRequest), errors.Is(err, roomserver.ErrTooLarge):
		return httputil.BadJSON("%v", err)
	case errors.Is(err, roomserver.ErrUnsupportedRoomVersion):
		return httputil.Errorf(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "room version not supported over federation")
	}
	return err
}

// makeMembership handles GET make_join and make_leave.
func (a *API) makeMembership(m event.Membership) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		roomID := id.RoomID(httputil.PathVar(r, "roomID"))
		userID := id.UserID(httputil.PathVar(r, "userID"))
		if _, _, err := userID.ParseAndValidateRelaxed(); err != nil {
			return httputil.BadJSON("invalid user ID")
		}
		if userID.Homeserver() != origin(r) {
			return httputil.Forbidden("user %s is not from %s", userID, origin(r))
		}
		var versions []id.RoomVersion
		if m != event.MembershipLeave {
			// ver lists the versions the joining server supports; without it, only room version 1.
			for _, v := range r.URL.Query()["ver"] {
				versions = append(versions, id.RoomVersion(v))
			}
			if len(versions) == 0 {
				versions = []id.RoomVersion{id.RoomV1}
			}
		}
		tmpl, version, err := a.d.Rooms.MakeMembership(r.Context(), roomID, userID, m, versions)
		if errors.Is(err, roomserver.ErrIncompatibleVersion) {
			return httputil.Errorf(http.StatusBadRequest, "M_INCOMPATIBLE_ROOM_VERSION", "room version %s not supported by your server", version).
				With("room_version", version)
		} else if err != nil {
			return roomErr(err)
		}
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"event": json.RawMessage(tmpl), "room_version": version})
	}
}

// sendMembership handles PUT send_join, send_leave (v2) and send_knock.
func (a *API) sendMembership(m event.Membership) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		resp, err := a.sendMembershipResp(r, m)
		if err != nil {
			return err
		}
		return httputil.WriteJSON(w, http.StatusOK, resp)
	}
}

// sendMembershipV1 handles PUT send_join and send_leave v1, whose response
// is wrapped as [200, response].
func (a *API) sendMembershipV1(m event.Membership) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		resp, err := a.sendMembershipResp(r, m)
		if err != nil {
			return err
		}
		return httputil.WriteJSON(w, http.StatusOK, []any{http.StatusOK, resp})
	}
}

func (a *API) sendMembershipResp(r *http.Request, m event.Membership) (any, error) {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	eventID := id.EventID(httputil.PathVar(r, "eventID"))
	var raw json.RawMessage
	if err := httputil.DecodeJSONObject(r, &raw); err != nil {
		return nil, err
	}
	state, chain, signed, err := a.d.Rooms.SendMembership(r.Context(), origin(r), roomID, eventID, raw, m)
	if err != nil {
		return nil, roomErr(err)
	}
	if ev, err := a.d.Rooms.FederationEvent(r.Context(), roomID, eventID); err == nil && a.d.Outbound != nil {
		a.d.Outbound.Broadcast(ev, origin(r))
	}
	if m == event.MembershipKnock {
		stripped, err := a.d.Rooms.StrippedState(r.Context(), roomID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"knock_room_state": stripped}, nil
	}
	if m != event.MembershipJoin {
		return map[string]any{}, nil
	}
	servers, err := a.d.Rooms.JoinedServers(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	// event: the join as stored here, countersigned when one of our members
	// authorised a restricted join.
	return map[string]any{
		"origin": a.serverName, "state": rawList(state), "auth_chain": rawList(chain),
		"members_omitted": false, "servers_in_room": servers, "event": json.RawMessage(signed),
	}, nil
}

func rawValues(in []json.RawMessage) []jsontext.Value {
	out := make([]jsontext.Value, len(in))
	for i, v := range in {
		out[i] = jsontext.Value(v)
	}
	return out
}

func rawList(in []jsontext.Value) []json.RawMessage {
	out := make([]json.RawMessage, len(in))
	for i, v := range in {
		out[i] = json.RawMessage(v)
	}
	return out
}

// invite handles PUT /_matrix/federation/v2/invite/{roomID}/{eventID}.
func (a *API) invite(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Event           json.RawMessage   `json:"event"`
		RoomVersion     id.RoomVersion    `json:"room_version"`
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	if len(body.Event) == 0 || body.RoomVersion == "" {
		return httputil.BadJSON("event and room_version are required")
	}
	signed, err := a.receiveInvite(r, body.RoomVersion, body.Event, body.InviteRoomState)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"event": json.RawMessage(signed)})
}

// inviteV1 handles PUT /_matrix/federation/v1/invite/{roomID}/{eventID}: the
// body is the event itself (room versions 1 and 2), the response [200, {event}].
func (a *API) inviteV1(w http.ResponseWriter, r *http.Request) error {
	var ev json.RawMessage
	if err := httputil.DecodeJSONObject(r, &ev); err != nil {
		return err
	}
	// The version is the room's, when known here, else that of the create
	// event among the stripped state, else 1.
	version := id.RoomV1
	if room, err := a.d.Store.GetRoom(r.Context(), id.RoomID(httputil.PathVar(r, "roomID"))); err == nil {
		version = room.Version
	} else {
		gjson.GetBytes(ev, "unsigned.invite_room_state").ForEach(func(_, s gjson.Result) bool {
			if s.Get("type").Str == "m.room.create" && s.Get("content.room_version").Str != "" {
				version = id.RoomVersion(s.Get("content.room_version").Str)
			}
			return true
		})
	}
	var stripped []json.RawMessage
	gjson.GetBytes(ev, "unsigned.invite_room_state").ForEach(func(_, s gjson.Result) bool {
		stripped = append(stripped, json.RawMessage(s.Raw))
		return true
	})
	signed, err := a.receiveInvite(r, version, ev, stripped)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, []any{http.StatusOK, map[string]any{"event": json.RawMessage(signed)}})
}

func (a *API) receiveInvite(r *http.Request, version id.RoomVersion, ev json.RawMessage, stripped []json.RawMessage) ([]byte, error) {
	if !roomserver.Supported(version) {
		return nil, httputil.Errorf(http.StatusBadRequest, "M_INCOMPATIBLE_ROOM_VERSION", "room version %s is not supported", version).
			With("room_version", version)
	}
	if a.d.AppServices != nil {
		// The invitee may be a user of an application service not created yet.
		a.d.AppServices.EnsureAppServiceUser(r.Context(), id.UserID(gjson.GetBytes(ev, "state_key").Str))
	}
	signed, err := a.d.Rooms.ReceiveInvite(r.Context(), origin(r), id.RoomID(httputil.PathVar(r, "roomID")),
		id.EventID(httputil.PathVar(r, "eventID")), version, ev, rawValues(stripped))
	if err != nil {
		return nil, roomErr(err)
	}
	return signed, nil
}

// checkServerInRoom returns 403 unless the requesting server may see the room.
func (a *API) checkServerInRoom(r *http.Request, roomID id.RoomID) error {
	ok, err := a.d.Rooms.ServerInRoom(r.Context(), origin(r), roomID)
	if err != nil {
		return roomErr(err)
	}
	if !ok {
		return httputil.Forbidden("server %s is not in room %s", origin(r), roomID)
	}
	return nil
}

func (a *API) pduList(evs []*storage.Event) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		out[i] = e.JSON
	}
	return out
}

// getMissingEvents handles POST /_matrix/federation/v1/get_missing_events/{roomID}.
func (a *API) getMissingEvents(w http.ResponseWriter, r *http.Request) error {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	var body struct {
		Earliest []id.EventID `json:"earliest_events"`
		Latest   []id.EventID `json:"latest_events"`
		Limit    int          `json:"limit"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	// Absent lists are taken as empty (as Synapse does): nothing to walk from.
	if err := a.checkServerInRoom(r, roomID); err != nil {
		return err
	}
	if body.Limit <= 0 || body.Limit > 100 {
		body.Limit = 10
	}
	evs, err := a.d.Rooms.MissingEventsBetween(r.Context(), roomID, body.Earliest, body.Latest, body.Limit)
	if err != nil {
		return roomErr(err)
	}
	if evs, err = a.visible(r, roomID, evs); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"events": a.pduList(evs)})
}

// getEvent handles GET /_matrix/federation/v1/event/{eventID}.
func (a *API) getEvent(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.d.Rooms.FederationEvent(r.Context(), "", id.EventID(httputil.PathVar(r, "eventID")))
	if err != nil {
		return roomErr(err)
	}
	if err := a.checkServerInRoom(r, ev.RoomID); err != nil {
		return err
	}
	evs, err := a.visible(r, ev.RoomID, []*storage.Event{ev})
	if err != nil {
		return err
	}
	return a.transaction(w, []json.RawMessage{evs[0].JSON})
}

func (a *API) transaction(w http.ResponseWriter, pdus []json.RawMessage) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"origin": a.serverName, "origin_server_ts": nowMS(), "pdus": pdus})
}

func (a *API) stateAt(r *http.Request) ([]*storage.Event, []*storage.Event, error) {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	eventID := id.EventID(r.URL.Query().Get("event_id"))
	if eventID == "" {
		return nil, nil, httputil.MissingParam("event_id is required")
	}
	if err := a.checkServerInRoom(r, roomID); err != nil {
		return nil, nil, err
	}
	state, chain, err := a.d.Rooms.StateAtEvent(r.Context(), roomID, eventID)
	return state, chain, roomErr(err)
}

// stateIDs handles GET /_matrix/federation/v1/state_ids/{roomID}.
func (a *API) stateIDs(w http.ResponseWriter, r *http.Request) error {
	state, chain, err := a.stateAt(r)
	if err != nil {
		return err
	}
	pdus := make([]id.EventID, len(state))
	for i, e := range state {
		pdus[i] = e.EventID
	}
	chainIDs := make([]id.EventID, len(chain))
	for i, e := range chain {
		chainIDs[i] = e.EventID
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"pdu_ids": pdus, "auth_chain_ids": chainIDs})
}

// state handles GET /_matrix/federation/v1/state/{roomID}.
func (a *API) state(w http.ResponseWriter, r *http.Request) error {
	state, chain, err := a.stateAt(r)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"pdus": a.pduList(state), "auth_chain": a.pduList(chain)})
}

// eventAuth handles GET /_matrix/federation/v1/event_auth/{roomID}/{eventID}.
func (a *API) eventAuth(w http.ResponseWriter, r *http.Request) error {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	if err := a.checkServerInRoom(r, roomID); err != nil {
		return err
	}
	ev, err := a.d.Rooms.FederationEvent(r.Context(), roomID, id.EventID(httputil.PathVar(r, "eventID")))
	if err != nil {
		return roomErr(err)
	}
	chain, err := a.d.Rooms.AuthChain(r.Context(), []id.EventID{ev.EventID})
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"auth_chain": a.pduList(chain)})
}

// backfill handles GET /_matrix/federation/v1/backfill/{roomID}.
func (a *API) backfill(w http.ResponseWriter, r *http.Request) error {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	q := r.URL.Query()
	from := q["v"]
	if len(from) == 0 {
		return httputil.MissingParam("v is required")
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		return httputil.InvalidParam("limit must be a positive integer")
	}
	limit = min(limit, 100)
	if err := a.checkServerInRoom(r, roomID); err != nil {
		return err
	}
	ids := make([]id.EventID, len(from))
	for i, v := range from {
		ids[i] = id.EventID(v)
	}
	evs, err := a.d.Rooms.Backfill(r.Context(), roomID, ids, limit)
	if err != nil {
		return roomErr(err)
	}
	if evs, err = a.visible(r, roomID, evs); err != nil {
		return err
	}
	return a.transaction(w, a.pduList(evs))
}

// visible applies history visibility for the requesting server.
func (a *API) visible(r *http.Request, roomID id.RoomID, evs []*storage.Event) ([]*storage.Event, error) {
	room, err := a.d.Store.GetRoom(r.Context(), roomID)
	if err != nil {
		return nil, roomErr(err)
	}
	return a.d.Rooms.FilterForServer(r.Context(), origin(r), room.Version, evs)
}

// timestampToEvent handles GET /_matrix/federation/v1/timestamp_to_event/{roomID}.
func (a *API) timestampToEvent(w http.ResponseWriter, r *http.Request) error {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return httputil.InvalidParam("ts must be an integer")
	}
	dir := q.Get("dir")
	if dir != "f" && dir != "b" {
		return httputil.InvalidParam("dir must be f or b")
	}
	if err := a.checkServerInRoom(r, roomID); err != nil {
		return err
	}
	ev, err := a.d.Rooms.EventNearTS(r.Context(), roomID, ts, dir)
	if err != nil {
		return roomErr(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"event_id": ev.EventID, "origin_server_ts": ev.OriginTS})
}
