package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/identity"
	"parley/roomserver"
)

// Third-party invites (client-server API, "Third-party invites"): the
// homeserver asks the identity server the client names whether the address
// is bound to a Matrix user (lookup v2, with hashed addresses); bound
// addresses get an ordinary invite, others an invitation stored with the
// identity server and an m.room.third_party_invite event in the room.

// thirdPartyInvite turns an identity server's invitation into the
// roomserver's m.room.third_party_invite; an invalid one is the identity
// server's failure.
func thirdPartyInvite(inv *identity.Invitation) (*roomserver.ThirdPartyInvite, error) {
	out := &roomserver.ThirdPartyInvite{Token: inv.Token, DisplayName: inv.DisplayName}
	for _, k := range inv.PublicKeys {
		out.PublicKeys = append(out.PublicKeys, roomserver.ThirdPartyKey{PublicKey: k.PublicKey, KeyValidityURL: k.KeyValidityURL})
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", identity.ErrServer, err)
	}
	return out, nil
}

// identityErr maps identity server failures to client errors. The identity
// server refusing the client's token must not look like our own 401 (clients
// would log out), so it is a 403.
func identityErr(err error) error {
	var ie *identity.Error
	switch {
	case errors.As(err, &ie) && (ie.Status == http.StatusUnauthorized || ie.Status == http.StatusForbidden):
		return httputil.Forbidden("the identity server refused the request: %s %s", ie.ErrCode, ie.Message)
	case errors.As(err, &ie):
		code := ie.ErrCode
		if code == "" {
			code = httputil.CodeUnknown
		}
		return httputil.Errorf(http.StatusBadRequest, code, "the identity server refused the request: %s", ie.Message)
	case errors.Is(err, identity.ErrServer):
		return &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeUnknown, Message: err.Error(), Err: err}
	}
	return roomError(err)
}

// invite3PID is one invite_3pid entry or the third-party form of /invite.
type invite3PID struct {
	IDServer      string `json:"id_server"`
	IDAccessToken string `json:"id_access_token"`
	Medium        string `json:"medium"`
	Address       string `json:"address"`
}

func (inv *invite3PID) validate() error {
	switch {
	case inv.IDServer == "":
		return httputil.MissingParam("id_server is required")
	case inv.IDAccessToken == "":
		return httputil.MissingParam("id_access_token is required")
	case inv.Medium == "":
		return httputil.MissingParam("medium is required")
	case inv.Address == "":
		return httputil.MissingParam("address is required")
	case !id.ValidateServerName(inv.IDServer):
		return httputil.InvalidParam("invalid id_server %q", inv.IDServer)
	}
	return nil
}

// storeInviteRequest is the store-invite body for an invitation into roomID
// by sender, with what the identity server may show in its message.
func (a *API) storeInviteRequest(ctx context.Context, inv *invite3PID, roomID id.RoomID, sender id.UserID, room *roomserver.RoomSummary) map[string]any {
	req := map[string]any{"medium": inv.Medium, "address": inv.Address, "room_id": roomID, "sender": sender}
	if room != nil {
		for k, v := range map[string]string{"room_alias": room.CanonicalAlias, "room_avatar_url": room.AvatarURL,
			"room_join_rules": room.JoinRule, "room_name": room.Name, "room_type": room.RoomType} {
			if v != "" {
				req[k] = v
			}
		}
	}
	if prof, err := a.store.GetProfile(ctx, sender); err == nil {
		for k, field := range map[string]string{"displayname": "sender_display_name", "avatar_url": "sender_avatar_url"} {
			var v string
			if raw, ok := prof[k]; ok && json.Unmarshal(raw, &v) == nil && v != "" {
				req[field] = v
			}
		}
	}
	return req
}

// inviteThirdParty handles POST /rooms/{roomID}/invite with id_server,
// id_access_token, medium and address.
func (a *API) inviteThirdParty(ctx context.Context, dev *authn.Device, roomID id.RoomID, inv *invite3PID) error {
	if err := inv.validate(); err != nil {
		return err
	}
	// Check the inviter first: the identity server sends the invitee a
	// message as soon as it stores the invitation.
	if ok, err := a.rooms.MayInvite(ctx, roomID, dev.UserID); err != nil {
		return roomError(err)
	} else if !ok {
		return httputil.Forbidden("you may not invite users to this room")
	}
	mxid, err := a.ids.Lookup(ctx, inv.IDServer, inv.IDAccessToken, inv.Medium, strings.TrimSpace(inv.Address))
	if err != nil {
		return identityErr(err)
	}
	if mxid != "" {
		_, err := a.rooms.Invite(ctx, roomserver.MembershipRequest{RoomID: roomID, Sender: dev.UserID, Target: mxid})
		return roomError(err)
	}
	sum, err := a.rooms.Summary(ctx, roomID)
	if err != nil {
		return roomError(err)
	}
	sum.State = nil
	answer, err := a.ids.StoreInvite(ctx, inv.IDServer, inv.IDAccessToken, a.storeInviteRequest(ctx, inv, roomID, dev.UserID, sum))
	if err != nil {
		return identityErr(err)
	}
	stored, err := thirdPartyInvite(answer)
	if err != nil {
		return identityErr(err)
	}
	_, err = a.rooms.SendThirdPartyInvite(ctx, roomID, dev.UserID, stored)
	return roomError(err)
}

// createRoom3PID resolves createRoom's invite_3pid before the room is built:
// bound addresses join the ordinary invites; the others are stored with
// their identity servers once the room ID is known (nothing is stored in
// the room until every identity server has answered).
func (a *API) createRoom3PID(ctx context.Context, creator id.UserID, raw []json.RawMessage, req *roomserver.CreateRoomRequest) error {
	var unbound []*invite3PID
	for _, r := range raw {
		inv := &invite3PID{}
		if err := httputil.UnmarshalObject(r, inv); err != nil {
			return err
		}
		if err := inv.validate(); err != nil {
			return err
		}
		inv.Address = strings.TrimSpace(inv.Address)
		mxid, err := a.ids.Lookup(ctx, inv.IDServer, inv.IDAccessToken, inv.Medium, inv.Address)
		if err != nil {
			return identityErr(err)
		}
		if mxid != "" {
			if !slices.Contains(req.Invite, mxid) {
				req.Invite = append(req.Invite, mxid)
			}
			continue
		}
		unbound = append(unbound, inv)
	}
	if len(unbound) == 0 {
		return nil
	}
	req.StoreThirdPartyInvites = func(ctx context.Context, roomID id.RoomID) ([]*roomserver.ThirdPartyInvite, error) {
		sum := &roomserver.RoomSummary{JoinRule: "invite"}
		if req.Name != nil {
			sum.Name = *req.Name
		}
		if req.Preset == "public_chat" || (req.Preset == "" && req.Visibility == "public") {
			sum.JoinRule = "public"
		}
		if t, ok := req.CreationContent["type"]; ok {
			_ = json.Unmarshal(t, &sum.RoomType)
		}
		if req.RoomAliasName != "" {
			sum.CanonicalAlias = "#" + req.RoomAliasName + ":" + a.cfg.ServerName
		}
		out := make([]*roomserver.ThirdPartyInvite, 0, len(unbound))
		for _, inv := range unbound {
			answer, err := a.ids.StoreInvite(ctx, inv.IDServer, inv.IDAccessToken, a.storeInviteRequest(ctx, inv, roomID, creator, sum))
			var stored *roomserver.ThirdPartyInvite
			if err == nil {
				stored, err = thirdPartyInvite(answer)
			}
			if err != nil {
				return nil, identityErr(err)
			}
			out = append(out, stored)
		}
		return out, nil
	}
	return nil
}
