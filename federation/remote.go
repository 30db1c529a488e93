package federation

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/roomserver"
)

// Remote implements roomserver.Remote over the signed federation client.
type Remote struct {
	c *federation.Client
}

var _ roomserver.Remote = (*Remote)(nil)

// NewRemote wraps a federation client.
func NewRemote(c *federation.Client) *Remote { return &Remote{c: c} }

// MakeJoin implements roomserver.Remote.
func (r *Remote) MakeJoin(ctx context.Context, server string, roomID id.RoomID, userID id.UserID, versions []id.RoomVersion) (jsontext.Value, id.RoomVersion, error) {
	resp, err := r.c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: userID, Via: server, SupportedVersions: versions})
	if err != nil {
		return nil, "", remoteErr(err)
	}
	if resp == nil || len(resp.Event) == 0 {
		return nil, "", fmt.Errorf("%w: empty make_join response", roomserver.ErrRemote)
	}
	v := resp.RoomVersion
	if v == "" {
		v = "1"
	}
	return jsontext.Value(resp.Event), v, nil
}

// SendJoin implements roomserver.Remote.
func (r *Remote) SendJoin(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsontext.Value) ([]jsontext.Value, []jsontext.Value, jsontext.Value, error) {
	resp, err := r.c.SendJoin(ctx, &federation.ReqSendJoin{RoomID: roomID, EventID: eventID, Event: json.RawMessage(ev), Via: server})
	if unrecognized(err) {
		// A server without v2 send_join: the v1 API answers [200, response].
		var v1 federation.RespSendJoin
		err = r.v1Request(ctx, server, federation.URLPath{"v1", "send_join", roomID, eventID}, json.RawMessage(ev), &v1)
		resp = &v1
	}
	if err != nil {
		return nil, nil, nil, remoteErr(err)
	}
	return values(resp.State), values(resp.AuthChain), jsontext.Value(resp.Event), nil
}

// unrecognized reports whether err says the remote server lacks the endpoint
// (404, or 400 M_UNRECOGNIZED), so an older version of it may be tried.
func unrecognized(err error) bool {
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil {
		return false
	}
	switch herr.Response.StatusCode {
	case http.StatusNotFound:
		return true
	case http.StatusBadRequest:
		return herr.RespError != nil && herr.RespError.ErrCode == "M_UNRECOGNIZED"
	}
	return false
}

// v1Request makes a PUT request to a v1 endpoint whose response is wrapped
// as [200, response] (send_join, send_leave and invite v1), into out.
func (r *Remote) v1Request(ctx context.Context, server string, path federation.URLPath, body, out any) error {
	var wrapped []json.RawMessage
	if err := r.c.MakeRequest(ctx, server, true, http.MethodPut, path, body, &wrapped); err != nil {
		return err
	}
	if len(wrapped) != 2 {
		return fmt.Errorf("%w: v1 response is not [code, body]", roomserver.ErrRemote)
	}
	return json.Unmarshal(wrapped[1], out)
}

// Invite implements roomserver.Remote.
func (r *Remote) Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, version id.RoomVersion, ev jsontext.Value, stripped []jsontext.Value) (jsontext.Value, error) {
	target := id.UserID(gjson.GetBytes(ev, "state_key").Str)
	if target.Homeserver() != server {
		return nil, fmt.Errorf("%w: invitee is not on %s", roomserver.ErrBadRequest, server)
	}
	st := make([]federation.PDU, len(stripped))
	for i, s := range stripped {
		st[i] = json.RawMessage(s)
	}
	resp, err := r.c.SendInvite(ctx, &federation.ReqSendInvite{RoomID: roomID, UserID: target, EventID: eventID,
		Event: json.RawMessage(ev), InviteRoomState: st, RoomVersion: version})
	if unrecognized(err) && (version == id.RoomV1 || version == id.RoomV2) {
		// invite v1: the event itself, the stripped state in its unsigned.
		var body map[string]any
		if err = json.Unmarshal(ev, &body); err != nil {
			return nil, err
		}
		unsigned, _ := body["unsigned"].(map[string]any)
		if unsigned == nil {
			unsigned = map[string]any{}
		}
		unsigned["invite_room_state"] = st
		body["unsigned"] = unsigned
		var v1 federation.RespSendInvite
		err = r.v1Request(ctx, server, federation.URLPath{"v1", "invite", roomID, eventID}, body, &v1)
		resp = &v1
	}
	if err != nil {
		return nil, remoteErr(err)
	}
	return jsontext.Value(resp.Event), nil
}

// MissingEvents implements roomserver.Remote.
func (r *Remote) MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int) ([]jsontext.Value, error) {
	req := &federation.ReqGetMissingEvents{ServerName: server, RoomID: roomID, EarliestEvents: earliest, LatestEvents: latest, Limit: limit}
	resp, err := r.c.GetMissingEvents(ctx, req)
	if noResponse(err) && ctx.Err() == nil {
		// A POST is not replayed by net/http when a kept-alive connection
		// turns out to be closed; this query changes nothing, so ask again.
		resp, err = r.c.GetMissingEvents(ctx, req)
	}
	if err != nil {
		return nil, remoteErr(err)
	}
	return values(resp.Events), nil
}

// StateIDs implements roomserver.Remote.
func (r *Remote) StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]id.EventID, []id.EventID, error) {
	resp, err := r.c.GetStateIDs(ctx, server, roomID, eventID)
	if err != nil {
		return nil, nil, remoteErr(err)
	}
	return resp.PDUs, resp.AuthChain, nil
}

// State implements roomserver.Remote.
func (r *Remote) State(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, []jsontext.Value, error) {
	resp, err := r.c.GetState(ctx, server, roomID, eventID)
	if err != nil {
		return nil, nil, remoteErr(err)
	}
	return values(resp.PDUs), values(resp.AuthChain), nil
}

// Event implements roomserver.Remote.
func (r *Remote) Event(ctx context.Context, server string, eventID id.EventID) (jsontext.Value, error) {
	resp, err := r.c.GetEvent(ctx, server, eventID)
	if err != nil {
		return nil, remoteErr(err)
	}
	if len(resp.PDUs) != 1 {
		return nil, fmt.Errorf("%w: /event answered %d PDUs", roomserver.ErrRemote, len(resp.PDUs))
	}
	return jsontext.Value(resp.PDUs[0]), nil
}

// Backfill implements roomserver.Remote.
func (r *Remote) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error) {
	resp, err := r.c.Backfill(ctx, &federation.ReqBackfill{ServerName: server, RoomID: roomID, BackfillFrom: from, Limit: limit})
	if err != nil {
		return nil, remoteErr(err)
	}
	if resp == nil {
		return nil, fmt.Errorf("%w: empty backfill response", roomserver.ErrRemote)
	}
	return values(resp.PDUs), nil
}

func values(in []federation.PDU) []jsontext.Value {
	out := make([]jsontext.Value, len(in))
	for i, v := range in {
		out[i] = jsontext.Value(v)
	}
	return out
}

// remoteErr marks a remote failure; a 403 from the remote stays a forbidden error.
// noResponse reports whether err is a failure to get any answer (a
// connection error) rather than the remote server's error response.
func noResponse(err error) bool {
	var herr mautrix.HTTPError
	return err != nil && !(errors.As(err, &herr) && herr.Response != nil)
}

func remoteErr(err error) error {
	return fmt.Errorf("%w: %w", roomserver.ErrRemote, err)
}

// QueryProfile implements clientapi.RemoteQuerier.
func (r *Remote) QueryProfile(ctx context.Context, userID id.UserID, field string) (map[string]json.RawMessage, error) {
	q := url.Values{"user_id": {string(userID)}}
	if field != "" {
		q.Set("field", field)
	}
	var out map[string]json.RawMessage
	if err := r.c.Query(ctx, userID.Homeserver(), "profile", q, &out); err != nil {
		return nil, queryErr(err)
	}
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	return out, nil
}

// QueryDirectory implements clientapi.RemoteQuerier.
func (r *Remote) QueryDirectory(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error) {
	_, _, server := id.ParseCommonIdentifier(alias)
	resp, err := r.c.QueryDirectory(ctx, server, alias)
	if err != nil {
		return "", nil, queryErr(err)
	}
	if resp == nil || resp.RoomID == "" {
		return "", nil, roomserver.ErrRemoteNotFound
	}
	return resp.RoomID, resp.Servers, nil
}

func queryErr(err error) error {
	var herr mautrix.HTTPError
	if errors.As(err, &herr) && herr.RespError != nil && herr.RespError.ErrCode == "M_NOT_FOUND" {
		return fmt.Errorf("%w: %v", roomserver.ErrRemoteNotFound, err)
	}
	return err
}

// MakeMembership implements roomserver.Remote (make_leave, make_knock).
func (r *Remote) MakeMembership(ctx context.Context, server string, roomID id.RoomID, userID id.UserID, m event.Membership, versions []id.RoomVersion) (jsontext.Value, id.RoomVersion, error) {
	var resp *federation.RespMakeJoin
	var err error
	switch m {
	case event.MembershipLeave:
		resp, err = r.c.MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: roomID, UserID: userID, Via: server})
	case event.MembershipKnock:
		resp, err = r.c.MakeKnock(ctx, &federation.ReqMakeKnock{RoomID: roomID, UserID: userID, Via: server, SupportedVersions: versions})
	default:
		return nil, "", fmt.Errorf("%w: make_%s", roomserver.ErrBadRequest, m)
	}
	if err != nil {
		return nil, "", remoteErr(err)
	}
	if resp == nil || len(resp.Event) == 0 {
		return nil, "", fmt.Errorf("%w: empty make_%s response", roomserver.ErrRemote, m)
	}
	v := resp.RoomVersion
	if v == "" {
		v = "1"
	}
	return jsontext.Value(resp.Event), v, nil
}

// SendMembership implements roomserver.Remote (send_leave v2, send_knock).
func (r *Remote) SendMembership(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsontext.Value, m event.Membership) error {
	var err error
	switch m {
	case event.MembershipLeave:
		err = r.c.SendLeave(ctx, &federation.ReqSendLeave{RoomID: roomID, EventID: eventID, Event: json.RawMessage(ev), Via: server})
	case event.MembershipKnock:
		_, err = r.c.SendKnock(ctx, &federation.ReqSendKnock{RoomID: roomID, EventID: eventID, Event: json.RawMessage(ev), Via: server})
	default:
		return fmt.Errorf("%w: send_%s", roomserver.ErrBadRequest, m)
	}
	if err != nil {
		return remoteErr(err)
	}
	return nil
}

// QueryUserKeys asks server for its users' device and cross-signing keys (user/keys/query).
func (r *Remote) QueryUserKeys(ctx context.Context, server string, query map[id.UserID][]id.DeviceID) (deviceKeys map[id.UserID]map[id.DeviceID]json.RawMessage, master, selfSigning map[id.UserID]json.RawMessage, err error) {
	var resp struct {
		DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
		MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
		SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
	}
	if err := r.c.MakeRequest(ctx, server, true, http.MethodPost, federation.URLPath{"v1", "user", "keys", "query"},
		map[string]any{"device_keys": query}, &resp); err != nil {
		return nil, nil, nil, err
	}
	return resp.DeviceKeys, resp.MasterKeys, resp.SelfSigningKeys, nil
}

// ClaimUserKeys claims one-time keys of server's users (user/keys/claim).
func (r *Remote) ClaimUserKeys(ctx context.Context, server string, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	var resp struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := r.c.MakeRequest(ctx, server, true, http.MethodPost, federation.URLPath{"v1", "user", "keys", "claim"},
		map[string]any{"one_time_keys": query}, &resp); err != nil {
		return nil, err
	}
	return resp.OneTimeKeys, nil
}
