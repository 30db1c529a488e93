package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// serverControlledTypes cannot be set through the account data API (spec:
// 405 M_BAD_JSON): m.fully_read goes through read markers, m.push_rules
// through /pushrules.
var serverControlledTypes = map[string]bool{"m.fully_read": true, "m.push_rules": true}

// accountDataPath reads and checks userId, roomId (optional) and type.
func accountDataPath(r *http.Request, dev *authn.Device) (id.RoomID, string, error) {
	if _, err := checkSelf(r, dev, "access account data"); err != nil {
		return "", "", err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	if _, hasRoom := muxVar(r, "roomId"); hasRoom && !validRoomID(room) {
		return "", "", httputil.InvalidParam("%q is not a valid room ID", room)
	}
	typ := httputil.PathVar(r, "type")
	if typ == "" {
		return "", "", httputil.InvalidParam("account data type is empty")
	}
	return room, typ, nil
}

func validRoomID(room id.RoomID) bool {
	s := string(room)
	return strings.HasPrefix(s, "!") && len(s) > 1 && len(s) <= 255
}

// putAccountData handles PUT /user/{userId}[/rooms/{roomId}]/account_data/{type}.
func (in *Inbox) putAccountData(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, typ, err := accountDataPath(r, dev)
	if err != nil {
		return err
	}
	var content json.RawMessage
	if err := httputil.DecodeJSONObject(r, &content); err != nil {
		return err
	}
	if serverControlledTypes[typ] {
		return httputil.Errorf(http.StatusMethodNotAllowed, httputil.CodeBadJSON, "cannot set %s through this API", typ)
	}
	if _, err := in.store.PutAccountData(r.Context(), dev.UserID, room, typ, content); err != nil {
		return err
	}
	in.notifier.WakeUsers(dev.UserID)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// getAccountData handles GET /user/{userId}[/rooms/{roomId}]/account_data/{type}.
func (in *Inbox) getAccountData(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, typ, err := accountDataPath(r, dev)
	if err != nil {
		return err
	}
	if room == "" && typ == "m.push_rules" {
		rs, err := in.ruleset(r.Context(), dev.UserID)
		if err != nil {
			return err
		}
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"global": rs})
	}
	content, err := in.store.GetAccountData(r.Context(), dev.UserID, room, typ)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("account data %s not found", typ)
	}
	if err != nil {
		return err
	}
	return httputil.WriteRawJSON(w, http.StatusOK, content)
}

// tagsContent is the content of m.tag.
type tagsContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

func parseTags(old json.RawMessage) (tagsContent, error) {
	tc := tagsContent{Tags: map[string]json.RawMessage{}}
	if old != nil {
		if err := json.Unmarshal(old, &tc); err != nil {
			return tc, err
		}
		if tc.Tags == nil {
			tc.Tags = map[string]json.RawMessage{}
		}
	}
	return tc, nil
}

// getTags handles GET /user/{userId}/rooms/{roomId}/tags.
func (in *Inbox) getTags(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "read tags"); err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	content, err := in.store.GetAccountData(r.Context(), dev.UserID, room, "m.tag")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	tc, err := parseTags(content)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, tc)
}

// putTag handles PUT /user/{userId}/rooms/{roomId}/tags/{tag}.
func (in *Inbox) putTag(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "add tags"); err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	tag := httputil.PathVar(r, "tag")
	var body struct {
		Order *float64 `json:"order,omitempty"`
	}
	var raw map[string]json.RawMessage
	if err := httputil.DecodeJSONObject(r, &raw); err != nil {
		return err
	}
	if o, ok := raw["order"]; ok {
		if err := json.Unmarshal(o, &body.Order); err != nil {
			return httputil.BadJSON("order must be a number")
		}
		if body.Order != nil && (*body.Order < 0 || *body.Order > 1) {
			return httputil.BadJSON("order must be between 0 and 1")
		}
	}
	enc, _ := json.Marshal(raw)
	return in.updateTags(w, r, dev.UserID, room, func(tc *tagsContent) { tc.Tags[tag] = enc })
}

// deleteTag handles DELETE /user/{userId}/rooms/{roomId}/tags/{tag}.
func (in *Inbox) deleteTag(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "remove tags"); err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	tag := httputil.PathVar(r, "tag")
	return in.updateTags(w, r, dev.UserID, room, func(tc *tagsContent) { delete(tc.Tags, tag) })
}

func (in *Inbox) updateTags(w http.ResponseWriter, r *http.Request, user id.UserID, room id.RoomID, change func(*tagsContent)) error {
	if !validRoomID(room) {
		return httputil.InvalidParam("%q is not a valid room ID", room)
	}
	_, err := in.store.UpdateAccountData(r.Context(), user, room, "m.tag", func(old json.RawMessage) (json.RawMessage, error) {
		tc, err := parseTags(old)
		if err != nil {
			return nil, err
		}
		change(&tc)
		return json.Marshal(tc)
	})
	if err != nil {
		return err
	}
	in.notifier.WakeUsers(user)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// accountDataStream delivers account data: global entries to account_data,
// per-room entries to rooms.join[room].account_data for joined rooms.
type accountDataStream struct{ in *Inbox }

// Name implements Stream.
func (s *accountDataStream) Name() StreamName { return StreamAccountData }

// Position implements Stream.
func (s *accountDataStream) Position(ctx context.Context) (int64, error) {
	return s.in.store.AccountDataPosition(ctx)
}

// PositionIn implements SnapshotStream.
func (s *accountDataStream) PositionIn(p storage.Positions) int64 { return p.AccountData }

// Fill implements Stream.
func (s *accountDataStream) Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error) {
	user := req.Device.UserID
	entries, err := s.in.store.AccountDataBetween(ctx, user, from, to)
	if err != nil {
		return false, err
	}
	f := req.Filter
	var globalPart, roomPart = f.AccountData, roomFilterPart(f, "account_data")
	var joined map[id.RoomID]struct{}
	found := false
	var global []json.RawMessage
	perRoom := map[id.RoomID][]json.RawMessage{}
	for _, e := range entries {
		content := e.Content
		if e.RoomID == "" && e.Type == "m.push_rules" {
			rs, err := s.in.ruleset(ctx, user)
			if err != nil {
				return false, err
			}
			content, _ = json.Marshal(map[string]any{"global": rs})
		}
		ev, _ := json.Marshal(map[string]any{"type": e.Type, "content": content})
		if e.RoomID == "" {
			if matchPart(globalPart, e.Type, user, "") {
				global = append(global, ev)
			}
			continue
		}
		if !roomAllowed(f, e.RoomID) || !matchPart(roomPart, e.Type, user, e.RoomID) {
			continue
		}
		if joined == nil {
			if joined, _, err = s.in.joinedIn(ctx, user, resp); err != nil {
				return false, err
			}
		}
		if _, ok := joined[e.RoomID]; ok {
			perRoom[e.RoomID] = append(perRoom[e.RoomID], ev)
		} else if lr, ok := resp.Rooms.Leave[e.RoomID]; ok {
			// A room the PDU stream lists as left carries its account data too.
			lr.AccountData.Events = append(lr.AccountData.Events, ev)
			found = true
		}
	}
	// On an initial sync push rules are always sent, as Synapse does.
	if (req.Initial() || req.FullState) && matchPart(globalPart, "m.push_rules", user, "") && !hasType(entries, "m.push_rules") {
		rs, err := s.in.ruleset(ctx, user)
		if err != nil {
			return false, err
		}
		ev, _ := json.Marshal(map[string]any{"type": "m.push_rules", "content": map[string]any{"global": rs}})
		global = append(global, ev)
	}
	global = applyLimit(global, globalPart)
	if len(global) > 0 {
		resp.AccountData.Events = append(resp.AccountData.Events, global...)
		found = true
	}
	for room, evs := range perRoom {
		jr := resp.JoinedRoom(room)
		jr.AccountData.Events = append(jr.AccountData.Events, applyLimit(evs, roomPart)...)
		found = true
	}
	return found, nil
}

func hasType(entries []storage.AccountData, typ string) bool {
	for _, e := range entries {
		if e.RoomID == "" && e.Type == typ {
			return true
		}
	}
	return false
}
