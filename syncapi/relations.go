package syncapi

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix"

	"parley/roomserver"
	"parley/storage"
)

// formatTimeline formats timeline events with their bundled aggregations
// (unsigned.m.relations) and the user's membership at each event
// (unsigned.membership), as the client-server API asks of every event
// returned to clients; federation-format filters get the bare PDUs. m is the
// user's current membership of the room.
func (f *filler) formatTimeline(ctx context.Context, m storage.Membership, tl []*storage.Event) ([]json.RawMessage, error) {
	if len(tl) == 0 || f.req.Filter != nil && f.req.Filter.EventFormat == mautrix.EventFormatFederation {
		return f.format(tl), nil
	}
	var err error
	if f.p.recent == nil || !f.p.recent.unrelated(tl, f.p.serverName) {
		if tl, err = f.p.rooms.WithRelations(ctx, f.req.Device.UserID, f.req.Device.DeviceID, tl); err != nil {
			return nil, err
		}
	}
	memberships := make([]string, len(tl))
	var vis *roomserver.Visibility
	for i, ev := range tl {
		if ev.StreamPos >= m.StreamPos {
			memberships[i] = m.Membership // at or after the current membership event
			continue
		}
		if vis == nil {
			if vis, err = f.p.rooms.NewVisibility(ctx, f.req.Device.UserID, m.RoomID); err != nil {
				return nil, err
			}
		}
		memberships[i] = vis.MembershipAt(ev.StreamPos)
	}
	return f.formatWith(tl, memberships), nil
}
