package syncapi_test

import (
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// inboxJoined tells the inbox (typing, receipts) that users joined room,
// while it still keeps its own membership set.
func inboxJoined(srv *testserver.Server, room string, users ...*testserver.Client) {
	for _, u := range users {
		srv.HS.Membership.SetJoined(id.RoomID(room), u.UserID, true)
	}
}
