package homeserver

import (
	"parley/clientapi"
	"parley/federation"
)

// The federation client answers the client API's remote directory and
// third-party invite questions (clientapi finds them on its Remote).
var (
	_ clientapi.RemoteRoomDirectory = (*federation.Remote)(nil)
	_ clientapi.RemoteThirdParty    = (*federation.Remote)(nil)
)
