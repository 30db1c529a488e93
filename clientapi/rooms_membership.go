package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

type membershipBody struct {
	UserID id.UserID `json:"user_id"`
	Reason string    `json:"reason"`
	// ThirdPartySigned (joins) is an identity server's signed acceptance of a
	// third-party invite: {sender, mxid, token, signatures}.
	ThirdPartySigned json.RawMessage `json:"third_party_signed"`
	// extra holds the body's other keys; a join puts them into its member event
	// content (as Synapse does), except third_party_signed.
	extra map[string]any
}

// decodeMembershipBody decodes an optional JSON object body (an empty body is {}).
func decodeMembershipBody(r *http.Request, needUser bool) (*membershipBody, error) {
	var body membershipBody
	raw, err := httputil.ReadBody(r, httputil.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if len(raw) > 0 || needUser {
		if err := httputil.UnmarshalObject(raw, &body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &body.extra); err != nil {
			return nil, httputil.BadJSON("invalid body")
		}
		for _, k := range []string{"user_id", "reason", "third_party_signed", "membership"} {
			delete(body.extra, k)
		}
	}
	if needUser {
		if err := body.checkUser(); err != nil {
			return nil, err
		}
	}
	return &body, nil
}

// checkUser checks the body's user_id (required by invite, kick, ban and unban).
func (b *membershipBody) checkUser() error {
	if b.UserID == "" {
		return httputil.MissingParam("user_id is required")
	}
	if _, _, err := b.UserID.ParseAndValidateRelaxed(); err != nil {
		return httputil.InvalidParam("invalid user_id %q", b.UserID)
	}
	return nil
}

// join handles POST /join/{roomIDOrAlias} and POST /rooms/{roomID}/join.
func (a *API) join(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	target := httputil.PathVar(r, "roomIDOrAlias")
	if target == "" {
		target = httputil.PathVar(r, "roomID")
	}
	body, err := decodeMembershipBody(r, false)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	roomID, via, err := a.resolveTarget(r.Context(), target, append(q["server_name"], q["via"]...))
	if err != nil {
		return err
	}
	if len(body.ThirdPartySigned) > 0 && string(body.ThirdPartySigned) != "null" {
		sender, err := a.exchangeThirdPartySigned(r.Context(), dev, roomID, body.ThirdPartySigned)
		if err != nil {
			return err
		}
		if sender.Homeserver() != a.cfg.ServerName {
			via = append(via, sender.Homeserver())
		}
	}
	if _, err := a.rooms.Join(r.Context(), roomserver.MembershipRequest{RoomID: roomID, Sender: dev.UserID, Reason: body.Reason, Guest: dev.IsGuest, Extra: body.extra, Via: via}); err != nil {
		return roomError(err)
	}
	a.copyTagsFromPredecessor(r.Context(), dev.UserID, roomID)
	return httputil.WriteJSON(w, http.StatusOK, map[string]id.RoomID{"room_id": roomID})
}

// copyTagsFromPredecessor gives a user who joins an upgraded room the tags
// they had on the room it replaced (m.room.create's predecessor), unless
// they tagged the new room already.
func (a *API) copyTagsFromPredecessor(ctx context.Context, user id.UserID, roomID id.RoomID) {
	create, err := a.store.CurrentStateEvent(ctx, roomID, event.StateCreate.Type, "")
	if err != nil {
		return
	}
	pred := id.RoomID(gjson.GetBytes(create.JSON, "content.predecessor.room_id").Str)
	if pred == "" {
		return
	}
	if _, err := a.store.GetAccountData(ctx, user, roomID, event.AccountDataRoomTags.Type); err == nil {
		return
	}
	tags, err := a.store.GetAccountData(ctx, user, pred, event.AccountDataRoomTags.Type)
	if err != nil {
		return
	}
	if _, err := a.store.PutAccountData(ctx, user, roomID, event.AccountDataRoomTags.Type, tags); err != nil {
		a.log.Warn("copy tags to the upgraded room", zap.Error(err))
	}
}

// resolveTarget turns the room ID or alias of a join or a room summary
// into a room ID, adding the servers an alias of another server names to
// via. Errors are Matrix errors.
func (a *API) resolveTarget(ctx context.Context, target string, via []string) (id.RoomID, []string, error) {
	if _, _, server := id.ParseCommonIdentifier(target); len(target) > 0 && target[0] == '#' && server != a.cfg.ServerName && a.remote != nil {
		rid, servers, err := a.remote.QueryDirectory(ctx, id.RoomAlias(target))
		if err != nil {
			return "", nil, httputil.NotFound("Room alias %s not found", target)
		}
		return rid, append(via, servers...), nil
	}
	roomID, err := a.resolveRoom(ctx, target)
	if err != nil {
		return "", nil, roomError(err)
	}
	return roomID, via, nil
}

// resolveRoom is the roomserver's ResolveRoom, which asks the application
// services about a local alias it does not know.
func (a *API) resolveRoom(ctx context.Context, roomIDOrAlias string) (id.RoomID, error) {
	roomID, err := a.rooms.ResolveRoom(ctx, roomIDOrAlias)
	if errors.Is(err, roomserver.ErrRoomNotFound) && strings.HasPrefix(roomIDOrAlias, "#") {
		if rid, ok := a.ResolveAppServiceAlias(ctx, id.RoomAlias(roomIDOrAlias)); ok {
			return rid, nil
		}
	}
	return roomID, err
}

// knock handles POST /knock/{roomIDOrAlias}.
func (a *API) knock(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	body, err := decodeMembershipBody(r, false)
	if err != nil {
		return err
	}
	roomID, err := a.resolveRoom(r.Context(), httputil.PathVar(r, "roomIDOrAlias"))
	if err != nil {
		return roomError(err)
	}
	if _, err := a.rooms.Knock(r.Context(), roomserver.MembershipRequest{RoomID: roomID, Sender: dev.UserID, Reason: body.Reason}); err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]id.RoomID{"room_id": roomID})
}

// membershipAction handles invite, leave, kick, ban and unban under /rooms/{roomID}/.
func (a *API) membershipAction(action string) authn.Handler {
	return func(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
		roomID, err := roomIDVar(r)
		if err != nil {
			return err
		}
		body, err := decodeMembershipBody(r, action != "leave" && action != "invite")
		if err != nil {
			return err
		}
		if action == "invite" && body.UserID == "" && (body.extra["medium"] != nil || body.extra["address"] != nil || body.extra["id_server"] != nil) {
			var inv invite3PID
			raw, _ := json.Marshal(body.extra)
			if err := httputil.UnmarshalObject(raw, &inv); err != nil {
				return err
			}
			if err := a.inviteThirdParty(r.Context(), dev, roomID, &inv); err != nil {
				return err
			}
			return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
		}
		if action == "invite" {
			if err := body.checkUser(); err != nil {
				return err
			}
		}
		req := roomserver.MembershipRequest{RoomID: roomID, Sender: dev.UserID, Target: body.UserID, Reason: body.Reason}
		ctx := r.Context()
		switch action {
		case "invite":
			a.EnsureAppServiceUser(ctx, body.UserID)
			_, err = a.rooms.Invite(ctx, req)
		case "leave":
			if err := a.checkNoticeInviteReject(ctx, dev.UserID, roomID); err != nil {
				return err
			}
			_, err = a.rooms.Leave(ctx, req)
		case "kick":
			_, err = a.rooms.Kick(ctx, req)
		case "ban":
			_, err = a.rooms.Ban(ctx, req)
		case "unban":
			_, err = a.rooms.Unban(ctx, req)
		}
		if err != nil {
			return roomError(err)
		}
		return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
	}
}

// checkNoticeInviteReject refuses to reject the invite to the user's server
// notices room (spec: Server Notices); once joined they may leave it.
func (a *API) checkNoticeInviteReject(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	notices, err := a.store.ServerNoticeRoom(ctx, user)
	if errors.Is(err, storage.ErrNotFound) || err == nil && notices != roomID {
		return nil
	} else if err != nil {
		return err
	}
	ev, err := a.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if ev.Membership == "invite" {
		return httputil.Errorf(http.StatusForbidden, httputil.CodeCannotLeaveServerNoticeRoom, "you cannot reject the invite to your server notices room")
	}
	return nil
}

// forget handles POST /rooms/{roomID}/forget.
func (a *API) forget(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	if _, err := decodeMembershipBody(r, false); err != nil {
		return err
	}
	if err := a.rooms.Forget(r.Context(), dev.UserID, roomID); err != nil {
		if err2 := roomError(err); err2 != err {
			if me, ok := err2.(*httputil.MatrixError); ok && me.Code == httputil.CodeBadJSON {
				me.Code = httputil.CodeUnknown
			}
			return err2
		}
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// joinedRooms handles GET /joined_rooms.
func (a *API) joinedRooms(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	rooms, err := a.rooms.JoinedRooms(r.Context(), dev.UserID)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"joined_rooms": rooms})
}

// members handles GET /rooms/{roomID}/members.
func (a *API) members(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := roomserver.MembersRequest{User: dev.UserID, RoomID: roomID, Membership: q.Get("membership"), NotMembership: q.Get("not_membership")}
	for _, m := range []string{req.Membership, req.NotMembership} {
		switch m {
		case "", "join", "invite", "knock", "leave", "ban":
		default:
			return httputil.InvalidParam("invalid membership %q", m)
		}
	}
	if at := q.Get("at"); at != "" {
		if req.At, err = parsePos(at); err != nil {
			return httputil.InvalidParam("%v", err)
		}
	}
	evs, err := a.rooms.Members(r.Context(), req)
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"chunk": clientEvents(dev, evs)})
}

type joinedMember struct {
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// joinedMembers handles GET /rooms/{roomID}/joined_members.
func (a *API) joinedMembers(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	evs, err := a.rooms.JoinedMembers(r.Context(), dev.UserID, roomID)
	if err != nil {
		return roomError(err)
	}
	joined := make(map[string]joinedMember, len(evs))
	for _, ev := range evs {
		var m joinedMember
		c := gjson.GetManyBytes(ev.JSON, "content.displayname", "content.avatar_url")
		if c[0].Type == gjson.String {
			m.DisplayName = &c[0].Str
		}
		if c[1].Type == gjson.String {
			m.AvatarURL = &c[1].Str
		}
		joined[*ev.StateKey] = m
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"joined": joined})
}

// exchangeThirdPartySigned turns the third-party invite that a join's
// third_party_signed accepts into an invite of the joining user, issued by
// the inviter's server (this one or another), and returns the inviter.
func (a *API) exchangeThirdPartySigned(ctx context.Context, dev *authn.Device, roomID id.RoomID, raw json.RawMessage) (id.UserID, error) {
	var signed struct {
		Sender     id.UserID       `json:"sender"`
		MXID       id.UserID       `json:"mxid"`
		Token      string          `json:"token"`
		Signatures json.RawMessage `json:"signatures"`
	}
	if err := httputil.UnmarshalObject(raw, &signed); err != nil {
		return "", err
	}
	if signed.Sender == "" || signed.MXID == "" || signed.Token == "" || len(signed.Signatures) == 0 {
		return "", httputil.BadJSON("third_party_signed must have sender, mxid, token and signatures")
	}
	if signed.MXID != dev.UserID {
		return "", httputil.Forbidden("the third-party invite is for %s", signed.MXID)
	}
	if _, _, err := signed.Sender.ParseAndValidateRelaxed(); err != nil {
		return "", httputil.InvalidParam("invalid sender %q", signed.Sender)
	}
	if signed.Sender.Homeserver() == a.cfg.ServerName {
		if _, err := a.rooms.ExchangeThirdPartyInvite(ctx, roomID, signed.Sender, raw, a.ids.KeyValid); err != nil {
			return "", roomError(err)
		}
		return signed.Sender, nil
	}
	rt, ok := a.remote.(RemoteThirdParty)
	if !ok {
		return "", httputil.Forbidden("the inviter's server cannot be reached from here")
	}
	if err := rt.ExchangeThirdPartyInvite(ctx, signed.Sender.Homeserver(), roomID, signed.Sender, raw); err != nil {
		return "", roomError(err)
	}
	a.rooms.AwaitInvite(ctx, roomID, dev.UserID, 10*time.Second)
	return signed.Sender, nil
}
