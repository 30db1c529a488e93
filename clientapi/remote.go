package clientapi

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"parley/roomserver"
)

// ErrRemoteNotFound is returned by a RemoteQuerier when the remote server
// answers that the profile or alias does not exist.
var ErrRemoteNotFound = roomserver.ErrRemoteNotFound

// RemoteQuerier looks up profiles and room aliases on other servers
// (federation query/profile and query/directory). The federation package
// implements it.
type RemoteQuerier interface {
	// QueryProfile returns a remote user's profile, or one field of it when field is set.
	QueryProfile(ctx context.Context, userID id.UserID, field string) (map[string]json.RawMessage, error)
	// QueryDirectory resolves a remote alias to a room ID and servers to join through.
	QueryDirectory(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error)
}

// RemoteRoomDirectory queries other servers' published room directories
// (federation publicRooms). The federation package's Remote implements it.
type RemoteRoomDirectory interface {
	// PublicRooms returns server's answer, a PublicRoomsResponse object.
	PublicRooms(ctx context.Context, server string, q roomserver.PublicRoomsQuery, includeAllNetworks bool) (json.RawMessage, error)
}

// RemoteThirdParty asks the server of a third-party invite's sender to turn
// the signed invitation into an invite (federation
// exchange_third_party_invite). The federation package's Remote implements it.
type RemoteThirdParty interface {
	ExchangeThirdPartyInvite(ctx context.Context, server string, roomID id.RoomID, sender id.UserID, signed json.RawMessage) error
}
