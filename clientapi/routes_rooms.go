package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"parley/internal/ratelimit"
)

// registerRoomRoutes attaches room creation, sending, state, membership and history.
func (a *API) registerRoomRoutes(v3, v1 *mux.Router) {
	for _, p := range []string{"", "/{relType}", "/{relType}/{eventType}"} {
		a.authed(v1, "/rooms/{roomID}/relations/{eventID}"+p, "relations", a.relations, http.MethodGet)
	}
	a.authed(v1, "/rooms/{roomID}/threads", "threads", a.threads, http.MethodGet)
	a.authed(v1, "/rooms/{roomID}/hierarchy", "hierarchy", a.hierarchy, http.MethodGet)
	a.handle(v1, "/room_summary/{roomIDOrAlias}", "room_summary", a.roomSummary, http.MethodGet)
	a.authed(v1, "/rooms/{roomID}/timestamp_to_event", "timestamp_to_event", a.timestampToEvent, http.MethodGet)

	a.authedNoGuest(v3, "/createRoom", "create_room", a.createRoom, http.MethodPost)

	a.authed(v3, "/rooms/{roomID}/send/{eventType}/{txnID}", "send_event", a.limits.WrapAuthed(ratelimit.Message, a.sendEvent), http.MethodPut)
	a.authed(v3, "/rooms/{roomID}/send/{eventType}", "send_event_legacy", a.limits.WrapAuthed(ratelimit.Message, a.sendEvent), http.MethodPost)
	a.authed(v3, "/rooms/{roomID}/state/{eventType}", "put_state", a.putState, http.MethodPut)
	a.authed(v3, "/rooms/{roomID}/state/{eventType}/{stateKey:.*}", "put_state", a.putState, http.MethodPut)
	a.authedNoGuest(v3, "/rooms/{roomID}/redact/{eventID}/{txnID}", "redact", a.redactEvent, http.MethodPut)
	a.authedNoGuest(v3, "/rooms/{roomID}/redact/{eventID}", "redact_legacy", a.redactEvent, http.MethodPost)

	a.authed(v3, "/rooms/{roomID}/state", "get_state", a.getState, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/state/{eventType}", "get_state_event", a.getStateEvent, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/state/{eventType}/{stateKey:.*}", "get_state_event", a.getStateEvent, http.MethodGet)

	a.authed(v3, "/join/{roomIDOrAlias}", "join", a.join, http.MethodPost)
	a.authedNoGuest(v3, "/knock/{roomIDOrAlias}", "knock", a.knock, http.MethodPost)
	a.authed(v3, "/rooms/{roomID}/join", "join_room", a.join, http.MethodPost)
	a.authed(v3, "/rooms/{roomID}/leave", "leave", a.membershipAction("leave"), http.MethodPost)
	for _, action := range []string{"invite", "kick", "ban", "unban"} {
		a.authedNoGuest(v3, "/rooms/{roomID}/"+action, action, a.membershipAction(action), http.MethodPost)
	}
	a.authedNoGuest(v3, "/rooms/{roomID}/forget", "forget", a.forget, http.MethodPost)
	a.authedNoGuest(v3, "/rooms/{roomID}/upgrade", "upgrade_room", a.upgradeRoom, http.MethodPost)
	a.authed(v3, "/joined_rooms", "joined_rooms", a.joinedRooms, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/members", "members", a.members, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/joined_members", "joined_members", a.joinedMembers, http.MethodGet)

	a.authed(v3, "/rooms/{roomID}/event/{eventID}", "get_event", a.getEvent, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/context/{eventID}", "context", a.eventContext, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/messages", "messages", a.messages, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/initialSync", "room_initial_sync", a.roomInitialSync, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/aliases", "room_aliases", a.roomAliases, http.MethodGet)

	a.handle(v3, "/directory/list/room/{roomID}", "get_room_visibility", a.getRoomVisibility, http.MethodGet)
	a.authedNoGuest(v3, "/directory/list/room/{roomID}", "put_room_visibility", a.putRoomVisibility, http.MethodPut)
	a.handle(v3, "/publicRooms", "public_rooms", a.getPublicRooms, http.MethodGet)
	a.authed(v3, "/publicRooms", "public_rooms", a.postPublicRooms, http.MethodPost)
	a.handle(v3, "/directory/room/{roomAlias}", "get_alias", a.getAlias, http.MethodGet)
	a.authedNoGuest(v3, "/directory/room/{roomAlias}", "put_alias", a.putAlias, http.MethodPut)
	a.authedNoGuest(v3, "/directory/room/{roomAlias}", "delete_alias", a.deleteAlias, http.MethodDelete)
}
