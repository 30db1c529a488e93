package mediaapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// roomEventPage is how many events StoreRoomMedia reads at a time.
const roomEventPage = 500

// StoreRoomMedia implements RoomMediaLister over the room event store.
type StoreRoomMedia struct {
	Rooms interface {
		GetRoom(ctx context.Context, roomID id.RoomID) (*storage.Room, error)
		RoomEvents(ctx context.Context, roomID id.RoomID, from, to int64, limit int, backwards bool) ([]*storage.Event, error)
		MaxStreamPos(ctx context.Context) (int64, error)
	}
}

// ErrUnknownRoom is returned by RoomMediaURIs for a room the server does not know.
var ErrUnknownRoom = errors.New("unknown room")

// RoomMediaURIs returns every mxc:// URI found in the content of the room's
// accepted events (message url and info.thumbnail_url, avatars, and any
// other string field holding an mxc:// URI), de-duplicated.
func (s StoreRoomMedia) RoomMediaURIs(ctx context.Context, roomID id.RoomID) ([]id.ContentURIString, error) {
	if _, err := s.Rooms.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		return nil, ErrUnknownRoom
	} else if err != nil {
		return nil, err
	}
	to, err := s.Rooms.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []id.ContentURIString
	for from := int64(0); ; {
		evs, err := s.Rooms.RoomEvents(ctx, roomID, from, to, roomEventPage, false)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			var pdu struct {
				Content any `json:"content"`
			}
			if json.Unmarshal(ev.JSON, &pdu) != nil {
				continue
			}
			collectMXC(pdu.Content, func(u string) {
				if !seen[u] {
					seen[u] = true
					out = append(out, id.ContentURIString(u))
				}
			})
			from = max(from, ev.StreamPos)
		}
		if len(evs) < roomEventPage {
			return out, nil
		}
	}
}

// collectMXC calls f for every string in v (recursively) that is an mxc:// URI.
func collectMXC(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, "mxc://") {
			if _, ok := parseMXC(x); ok {
				f(x)
			}
		}
	case map[string]any:
		for _, e := range x {
			collectMXC(e, f)
		}
	case []any:
		for _, e := range x {
			collectMXC(e, f)
		}
	}
}
