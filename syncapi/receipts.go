package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Receipt types.
const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	receiptFullyRead   = "m.fully_read"
)

// postReceipt handles POST /rooms/{roomId}/receipt/{receiptType}/{eventId}.
func (in *Inbox) postReceipt(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	typ := httputil.PathVar(r, "receiptType")
	ev := id.EventID(httputil.PathVar(r, "eventId"))
	var body map[string]json.RawMessage
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	switch typ {
	case receiptRead, receiptReadPrivate, receiptFullyRead:
	default:
		return httputil.BadJSON("unknown receipt type %q", typ)
	}
	thread := ""
	if raw, ok := body["thread_id"]; ok {
		if err := json.Unmarshal(raw, &thread); err != nil || thread == "" {
			return httputil.BadJSON("thread_id must be a non-empty string")
		}
		if thread != "main" && !strings.HasPrefix(thread, "$") {
			return httputil.BadJSON("thread_id must be main or an event ID")
		}
		if typ == receiptFullyRead {
			return httputil.BadJSON("m.fully_read cannot be threaded")
		}
	}
	if !strings.HasPrefix(string(ev), "$") {
		return httputil.BadJSON("%q is not an event ID", ev)
	}
	if err := in.setReceipt(r.Context(), dev.UserID, room, typ, ev, thread); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// postReadMarkers handles POST /rooms/{roomId}/read_markers.
func (in *Inbox) postReadMarkers(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	var body map[string]*string
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	// m.fully_read first, then the receipts, as the spec lists them.
	for _, typ := range []string{receiptFullyRead, receiptRead, receiptReadPrivate} {
		v := body[typ]
		if v == nil {
			continue
		}
		if !strings.HasPrefix(*v, "$") {
			return httputil.BadJSON("%s must be an event ID", typ)
		}
	}
	for _, typ := range []string{receiptFullyRead, receiptRead, receiptReadPrivate} {
		if v := body[typ]; v != nil {
			if err := in.setReceipt(r.Context(), dev.UserID, room, typ, id.EventID(*v), ""); err != nil {
				return err
			}
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// setReceipt stores one receipt or read marker after checking membership
// and (when the roomserver can tell) that the event is in the room.
func (in *Inbox) setReceipt(ctx context.Context, user id.UserID, room id.RoomID, typ string, ev id.EventID, thread string) error {
	joined, err := in.rooms.IsJoined(ctx, room, user)
	if err != nil {
		return err
	}
	if !joined {
		return httputil.Forbidden("you are not joined to %s", room)
	}
	upTo := int64(-1) // unknown: everything stored so far is read
	if loc, ok := in.rooms.(EventLocator); ok {
		pos, err := loc.EventStreamPos(ctx, room, ev)
		if errors.Is(err, storage.ErrNotFound) {
			return httputil.NotFound("event %s not found in %s", ev, room)
		}
		if err != nil {
			return err
		}
		upTo = pos
		// As Synapse: a read receipt never moves backwards.
		if typ != receiptFullyRead {
			older, err := in.receiptIsOlder(ctx, loc, room, typ, user, thread, pos)
			if err != nil || older {
				return err
			}
		}
	}
	if typ == receiptFullyRead {
		content, _ := json.Marshal(map[string]id.EventID{"event_id": ev})
		if _, err := in.store.PutAccountData(ctx, user, room, receiptFullyRead, content); err != nil {
			return err
		}
		in.notifier.WakeUsers(user)
		return nil
	}
	rc := storage.Receipt{RoomID: room, Type: typ, UserID: user, EventID: ev, ThreadID: thread, TS: time.Now().UnixMilli()}
	badge := in.badgeBefore(ctx, user)
	if _, err := in.store.PutReceipt(ctx, rc, upTo); err != nil {
		return err
	}
	badge.after(ctx)
	in.presence.active(user)
	if typ == receiptReadPrivate {
		in.notifier.WakeUsers(user)
		return nil
	}
	in.wakeRoomMembers(ctx, room, user)
	in.sendReceiptEDU(rc)
	in.receiptToAppServices(rc)
	return nil
}

// receiptStream delivers m.receipt ephemeral events in joined rooms. Private
// receipts are visible only to their owner.
type receiptStream struct{ in *Inbox }

// Name implements Stream.
func (s *receiptStream) Name() StreamName { return StreamReceipt }

// Position implements Stream.
func (s *receiptStream) Position(ctx context.Context) (int64, error) {
	return s.in.store.ReceiptPosition(ctx)
}

// PositionIn implements SnapshotStream.
func (s *receiptStream) PositionIn(p storage.Positions) int64 { return p.Receipt }

// Fill implements Stream.
func (s *receiptStream) Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error) {
	user := req.Device.UserID
	_, rooms, err := s.in.joinedIn(ctx, user, resp)
	if err != nil || len(rooms) == 0 {
		return false, err
	}
	part := roomFilterPart(req.Filter, "ephemeral")
	allowed := rooms[:0:0]
	for _, room := range rooms {
		if roomAllowed(req.Filter, room) && matchPart(part, "m.receipt", "", room) {
			allowed = append(allowed, room)
		}
	}
	if len(allowed) == 0 {
		return false, nil
	}
	receipts, err := s.in.store.ReceiptsBetween(ctx, allowed, from, to)
	if err != nil {
		return false, err
	}
	// content: event ID → receipt type → user → {ts, thread_id}
	type content = map[id.EventID]map[string]map[id.UserID]map[string]any
	byRoom := map[id.RoomID]content{}
	for _, rc := range receipts {
		if rc.Type == receiptReadPrivate && rc.UserID != user {
			continue
		}
		c := byRoom[rc.RoomID]
		if c == nil {
			c = content{}
			byRoom[rc.RoomID] = c
		}
		types := c[rc.EventID]
		if types == nil {
			types = map[string]map[id.UserID]map[string]any{}
			c[rc.EventID] = types
		}
		users := types[rc.Type]
		if users == nil {
			users = map[id.UserID]map[string]any{}
			types[rc.Type] = users
		}
		putReceipt(users, rc)
	}
	for room, c := range byRoom {
		ev, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": c})
		jr := resp.JoinedRoom(room)
		jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
	}
	return len(byRoom) > 0, nil
}

// putReceipt sets a user's receipt in an m.receipt content's event → type
// map. A user's unthreaded and threaded receipts at one event clash there;
// the unthreaded one wins (MSC4102), whatever order they come in.
func putReceipt(users map[id.UserID]map[string]any, rc storage.Receipt) {
	if prev, ok := users[rc.UserID]; ok && rc.ThreadID != "" {
		if _, threaded := prev["thread_id"]; !threaded {
			return
		}
	}
	info := map[string]any{"ts": rc.TS}
	if rc.ThreadID != "" {
		info["thread_id"] = rc.ThreadID
	}
	users[rc.UserID] = info
}

// receiptIsOlder reports whether the user's current receipt of that type and
// thread is at an event after pos.
func (in *Inbox) receiptIsOlder(ctx context.Context, loc EventLocator, room id.RoomID, typ string, user id.UserID, thread string, pos int64) (bool, error) {
	cur, err := in.store.ReceiptEvent(ctx, room, typ, user, thread)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	curPos, err := loc.EventStreamPos(ctx, room, cur)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return curPos > pos, nil
}
