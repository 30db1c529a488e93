package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
)

// sendEvent handles PUT /rooms/{roomID}/send/{eventType}/{txnID}.
func (a *API) sendEvent(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	var content json.RawMessage
	if err := httputil.DecodeJSONObject(r, &content); err != nil {
		return err
	}
	evType := httputil.PathVar(r, "eventType")
	if evType == "" {
		return httputil.InvalidParam("missing event type")
	}
	ts, err := massagedTS(r, dev)
	if err != nil {
		return err
	}
	evID, err := a.rooms.Send(r.Context(), roomserver.SendRequest{
		RoomID: roomID, Sender: dev.UserID, DeviceID: dev.DeviceID, TxnID: httputil.PathVar(r, "txnID"),
		Type: evType, Content: content, OriginTS: ts,
	})
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]id.EventID{"event_id": evID})
}

// putState handles PUT /rooms/{roomID}/state/{eventType}/{stateKey} (stateKey may be absent or empty).
func (a *API) putState(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	var content json.RawMessage
	if err := httputil.DecodeJSONObject(r, &content); err != nil {
		return err
	}
	evType := httputil.PathVar(r, "eventType")
	stateKey := httputil.PathVar(r, "stateKey")
	ts, err := massagedTS(r, dev)
	if err != nil {
		return err
	}
	var evID id.EventID
	switch evType {
	case event.StateMember.Type:
		evID, err = a.putMemberState(r, dev, roomID, stateKey, content, ts)
	default:
		evID, err = a.rooms.Send(r.Context(), roomserver.SendRequest{
			RoomID: roomID, Sender: dev.UserID, DeviceID: dev.DeviceID, Type: evType, StateKey: &stateKey, Content: content, OriginTS: ts,
		})
	}
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]id.EventID{"event_id": evID})
}

// putMemberState maps a PUT of m.room.member state to the membership operations.
func (a *API) putMemberState(r *http.Request, dev *authn.Device, roomID id.RoomID, stateKey string, content json.RawMessage, ts int64) (id.EventID, error) {
	var c map[string]any
	if err := json.Unmarshal(content, &c); err != nil {
		return "", httputil.BadJSON("invalid member content")
	}
	m, _ := c["membership"].(string)
	reason, _ := c["reason"].(string)
	delete(c, "membership")
	delete(c, "reason")
	req := roomserver.MembershipRequest{RoomID: roomID, Sender: dev.UserID, Target: id.UserID(stateKey), Reason: reason, Extra: c, OriginTS: ts}
	ctx := r.Context()
	switch {
	case m == "join" && stateKey == string(dev.UserID):
		return a.rooms.Join(ctx, req)
	case m == "invite":
		a.EnsureAppServiceUser(ctx, req.Target)
		return a.rooms.Invite(ctx, req)
	case m == "leave" && stateKey == string(dev.UserID):
		return a.rooms.Leave(ctx, req)
	case m == "leave":
		return a.rooms.Kick(ctx, req)
	case m == "ban":
		return a.rooms.Ban(ctx, req)
	case m == "knock" && stateKey == string(dev.UserID):
		return a.rooms.Knock(ctx, req)
	}
	return "", httputil.Forbidden("cannot set membership %q for %s", m, stateKey)
}

// redactEvent handles PUT /rooms/{roomID}/redact/{eventID}/{txnID}.
func (a *API) redactEvent(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	var body struct {
		Reason *string `json:"reason"`
	}
	raw, err := httputil.ReadBody(r, httputil.MaxBodyBytes)
	if err != nil {
		return err
	}
	content := json.RawMessage("{}")
	if len(raw) > 0 {
		if err := httputil.UnmarshalObject(raw, &body); err != nil {
			return err
		}
		content = raw
	}
	target := id.EventID(httputil.PathVar(r, "eventID"))
	if len(target) < 2 || target[0] != '$' {
		return httputil.InvalidParam("invalid event ID")
	}
	evID, err := a.rooms.Send(r.Context(), roomserver.SendRequest{
		RoomID: roomID, Sender: dev.UserID, DeviceID: dev.DeviceID, TxnID: httputil.PathVar(r, "txnID"),
		Type: event.EventRedaction.Type, Content: content, Redacts: target,
	})
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]id.EventID{"event_id": evID})
}
