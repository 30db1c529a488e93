package retention_test

import "maunium.net/go/mautrix/id"

func toRoomID(s string) id.RoomID { return id.RoomID(s) }
