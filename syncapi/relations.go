package syncapi

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix"

	"parley/storage"
)

// formatTimeline formats timeline events with their bundled aggregations
// (unsigned.m.relations), as the client-server API asks of every event
// returned to clients; federation-format filters get the bare PDUs.
func (f *filler) formatTimeline(ctx context.Context, tl []*storage.Event) ([]json.RawMessage, error) {
	if len(tl) > 0 && (f.req.Filter == nil || f.req.Filter.EventFormat != mautrix.EventFormatFederation) {
		var err error
		if tl, err = f.p.rooms.WithRelations(ctx, f.req.Device.UserID, f.req.Device.DeviceID, tl); err != nil {
			return nil, err
		}
	}
	return f.format(tl), nil
}
