package roomserver

import "maunium.net/go/mautrix/id"

// supportedVersions are the room versions Parley can create and serve.
var supportedVersions = []id.RoomVersion{
	id.RoomV1, id.RoomV2, id.RoomV3, id.RoomV4, id.RoomV5, id.RoomV6, id.RoomV7, id.RoomV8, id.RoomV9, id.RoomV10, id.RoomV11, id.RoomV12,
}

// Supported reports whether rooms of version v can be created and joined.
func Supported(v id.RoomVersion) bool {
	for _, s := range supportedVersions {
		if s == v {
			return true
		}
	}
	return false
}

// RoomVersions returns the default room version (from configuration) and
// every supported version with its stability, for m.room_versions in /capabilities.
func RoomVersions(defaultVersion id.RoomVersion) (id.RoomVersion, map[id.RoomVersion]string) {
	out := make(map[id.RoomVersion]string, len(supportedVersions))
	for _, v := range supportedVersions {
		out[v] = "stable"
	}
	return defaultVersion, out
}
