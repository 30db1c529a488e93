package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/internal/identity"
	"parley/internal/logging"
	"parley/roomserver"
)

// Third-party invites over federation: identity servers tell the invitee's
// server that an address was bound (3pid/onbind), and that server has the
// room's server, where the inviter is, turn each invitation into an invite
// (exchange_third_party_invite).

// registerThirdParty attaches 3pid/onbind and exchange_third_party_invite.
func (a *API) registerThirdParty(v1 *mux.Router) {
	ids := identity.NewClient(a.d.Config, a.d.Log)
	// Identity servers have no server keys: onbind is not signed. What it
	// carries only becomes an invite if the identity server's signature on
	// it passes the auth rules.
	v1.Handle("/3pid/onbind", a.handle("3pid_onbind", a.onBind(ids))).Methods(http.MethodPut, http.MethodPost)
	v1.Handle("/exchange_third_party_invite/{roomID}", a.authed("exchange_third_party_invite", a.exchangeThirdPartyInvite(ids))).Methods(http.MethodPut)
}

// onBind handles PUT /_matrix/federation/v1/3pid/onbind: each pending
// invitation of the newly bound address becomes an invite of the local
// user, here when the inviter is local, else through the inviter's server.
// Every invitation is tried; when one is refused (a bad or revoked
// signature, an unknown room) the answer is that refusal, as Dendrite does.
func (a *API) onBind(ids *identity.Client) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Medium  string    `json:"medium"`
			Address string    `json:"address"`
			MXID    id.UserID `json:"mxid"`
			Invites []struct {
				MXID   id.UserID       `json:"mxid"`
				RoomID id.RoomID       `json:"room_id"`
				Sender id.UserID       `json:"sender"`
				Signed json.RawMessage `json:"signed"`
			} `json:"invites"`
		}
		if err := httputil.DecodeJSONObject(r, &body); err != nil {
			return err
		}
		if body.MXID == "" {
			return httputil.MissingParam("mxid is required")
		}
		if _, _, err := body.MXID.ParseAndValidateRelaxed(); err != nil || body.MXID.Homeserver() != a.serverName {
			return httputil.InvalidParam("mxid must be a user of this server")
		}
		ctx := r.Context()
		var firstErr error
		for _, inv := range body.Invites {
			if inv.MXID != body.MXID || len(inv.RoomID) < 2 || inv.RoomID[0] != '!' || len(inv.Signed) == 0 {
				a.d.Log.Info("onbind: skipping a malformed invitation", zap.String("mxid", string(inv.MXID)))
				continue
			}
			var err error
			if inv.Sender.Homeserver() == a.serverName {
				_, err = a.d.Rooms.ExchangeThirdPartyInvite(ctx, inv.RoomID, inv.Sender, inv.Signed, ids.KeyValid)
			} else {
				err = NewRemote(a.d.Client).ExchangeThirdPartyInvite(ctx, inv.Sender.Homeserver(), inv.RoomID, inv.Sender, inv.Signed)
			}
			if err != nil {
				a.d.Log.Info("onbind: third-party invite not exchanged", logging.RoomID(inv.RoomID), zap.String("mxid", string(inv.MXID)), zap.Error(err))
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if errors.Is(firstErr, roomserver.ErrRemote) {
			return &httputil.MatrixError{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: firstErr.Error(), Err: firstErr}
		} else if firstErr != nil {
			return roomErr(firstErr)
		}
		return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
	}
}

// exchangeThirdPartyInvite handles PUT exchange_third_party_invite/{roomID}:
// a partial m.room.member invite whose third_party_invite.signed the
// inviter's m.room.third_party_invite (here) must vouch for.
func (a *API) exchangeThirdPartyInvite(ids *identity.Client) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		roomID := id.RoomID(httputil.PathVar(r, "roomID"))
		var body struct {
			Type     string    `json:"type"`
			RoomID   id.RoomID `json:"room_id"`
			Sender   id.UserID `json:"sender"`
			StateKey string    `json:"state_key"`
			Content  struct {
				Membership       string `json:"membership"`
				ThirdPartyInvite *struct {
					Signed json.RawMessage `json:"signed"`
				} `json:"third_party_invite"`
			} `json:"content"`
		}
		if err := httputil.DecodeJSONObject(r, &body); err != nil {
			return err
		}
		switch {
		case body.Type != "m.room.member" || body.Content.Membership != "invite":
			return httputil.InvalidParam("the event must be an m.room.member invite")
		case body.RoomID != roomID:
			return httputil.InvalidParam("room_id does not match the path")
		case body.Content.ThirdPartyInvite == nil || len(body.Content.ThirdPartyInvite.Signed) == 0:
			return httputil.MissingParam("content.third_party_invite.signed is required")
		case body.Sender.Homeserver() != a.serverName:
			return httputil.InvalidParam("the sender is not a user of this server")
		}
		var signed struct {
			MXID string `json:"mxid"`
		}
		if err := json.Unmarshal(body.Content.ThirdPartyInvite.Signed, &signed); err != nil || signed.MXID != body.StateKey {
			return httputil.InvalidParam("state_key must be the signed mxid")
		}
		if _, err := a.d.Rooms.ExchangeThirdPartyInvite(r.Context(), roomID, body.Sender, body.Content.ThirdPartyInvite.Signed, ids.KeyValid); errors.Is(err, roomserver.ErrRemote) {
			// The invitee's server refused the invite or could not be reached.
			return &httputil.MatrixError{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: err.Error(), Err: err}
		} else if err != nil {
			return roomErr(err)
		}
		return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
	}
}

// ExchangeThirdPartyInvite implements clientapi.RemoteThirdParty: it asks the
// inviter's server to issue the invite a signed third-party invite stands for.
func (r *Remote) ExchangeThirdPartyInvite(ctx context.Context, server string, roomID id.RoomID, sender id.UserID, signed json.RawMessage) error {
	var mxid struct {
		MXID string `json:"mxid"`
	}
	_ = json.Unmarshal(signed, &mxid)
	partial := map[string]any{
		"type": "m.room.member", "room_id": roomID, "sender": sender, "state_key": mxid.MXID,
		"content": map[string]any{"membership": "invite", "third_party_invite": map[string]any{
			"display_name": mxid.MXID, "signed": signed,
		}},
	}
	err := r.c.MakeRequest(ctx, server, true, http.MethodPut, federation.URLPath{"v1", "exchange_third_party_invite", roomID}, partial, nil)
	var herr mautrix.HTTPError
	if errors.As(err, &herr) && herr.Response != nil && herr.Response.StatusCode == http.StatusForbidden {
		msg := ""
		if herr.RespError != nil {
			msg = herr.RespError.Err
		}
		return fmt.Errorf("%w: %s refused the third-party invite: %s", roomserver.ErrForbidden, server, msg)
	} else if err != nil {
		return remoteQueryErr(err)
	}
	return nil
}
