package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
	"parley/storage"
)

// ThirdPartyInvite is an invitation an identity server stored for a
// third-party identifier (its store-invite answer): it becomes an
// m.room.third_party_invite event whose state key is the token.
type ThirdPartyInvite struct {
	Token       string
	DisplayName string
	// PublicKeys are the identity server's keys that sign the invite's
	// acceptance; the first is also given as public_key and key_validity_url.
	PublicKeys []ThirdPartyKey
}

// ThirdPartyKey is one public key of an identity server.
type ThirdPartyKey struct {
	PublicKey      string `json:"public_key"`
	KeyValidityURL string `json:"key_validity_url"`
}

// validToken checks the spec's grammar of store-invite tokens: 1 to 255 of [0-9a-zA-Z.=_-].
func validToken(t string) bool {
	if t == "" || len(t) > 255 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '=' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks that the identity server's answer makes a valid
// m.room.third_party_invite (ErrBadRequest otherwise).
func (inv *ThirdPartyInvite) Validate() error {
	_, err := inv.content()
	return err
}

// content is the m.room.third_party_invite content; ErrBadRequest when the
// identity server's answer cannot make a valid one.
func (inv *ThirdPartyInvite) content() ([]byte, error) {
	if !validToken(inv.Token) {
		return nil, fmt.Errorf("%w: the identity server gave an invalid invite token", ErrBadRequest)
	}
	keys := make([]ThirdPartyKey, 0, len(inv.PublicKeys))
	for _, k := range inv.PublicKeys {
		if k.PublicKey != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the identity server gave no public key for the invite", ErrBadRequest)
	}
	return mustJSON(map[string]any{
		"display_name": inv.DisplayName, "public_key": keys[0].PublicKey, "key_validity_url": keys[0].KeyValidityURL,
		"public_keys": keys,
	}), nil
}

// SendThirdPartyInvite sends the m.room.third_party_invite event of an
// invitation stored with an identity server. The auth rules require the
// sender to be joined with the power to invite.
func (s *Server) SendThirdPartyInvite(ctx context.Context, roomID id.RoomID, sender id.UserID, inv *ThirdPartyInvite) (id.EventID, error) {
	c, err := inv.content()
	if err != nil {
		return "", err
	}
	token := inv.Token
	return s.Send(ctx, SendRequest{RoomID: roomID, Sender: sender, Type: event.StateThirdPartyInvite.Type, StateKey: &token, Content: c})
}

// ExchangeThirdPartyInvite turns a third-party invite its invitee accepted
// into the m.room.member invite it stands for: signed is the identity
// server's signed {mxid, token} object; the invite is sent by the local user
// who sent the m.room.third_party_invite with that token, and the auth rules
// check the identity server's signature against that event's public keys.
// The invitee may be on another server (the invite then goes there).
// When sender is set, it must be that user. keyValid, when set, asks the
// identity server whether the key that signed is still valid (its
// key_validity_url); a revoked key or an unreachable identity server refuses
// the invite.
func (s *Server) ExchangeThirdPartyInvite(ctx context.Context, roomID id.RoomID, sender id.UserID, signed json.RawMessage,
	keyValid func(ctx context.Context, validityURL, publicKey string) error) (id.EventID, error) {
	sg := gjson.ParseBytes(signed)
	mxid, token := id.UserID(sg.Get("mxid").Str), sg.Get("token").Str
	if !sg.IsObject() || mxid == "" || token == "" || !sg.Get("signatures").IsObject() {
		return "", fmt.Errorf("%w: signed must hold mxid, token and signatures", ErrBadRequest)
	}
	if _, _, err := mxid.ParseAndValidateRelaxed(); err != nil {
		return "", fmt.Errorf("%w: invalid mxid %q", ErrBadRequest, mxid)
	}
	tpi, err := s.store.CurrentStateEvent(ctx, roomID, event.StateThirdPartyInvite.Type, token)
	if errors.Is(err, storage.ErrNotFound) {
		if _, err := s.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
			return "", ErrRoomNotFound
		}
		return "", fmt.Errorf("%w: no third-party invite with this token in the room", ErrForbidden)
	} else if err != nil {
		return "", err
	}
	if sender != "" && tpi.Sender != sender {
		return "", fmt.Errorf("%w: the third-party invite was sent by another user", ErrForbidden)
	}
	if tpi.Sender.Homeserver() != s.serverName {
		return "", fmt.Errorf("%w: the third-party invite was sent from another server", ErrForbidden)
	}
	tpiContent := gjson.GetBytes(tpi.JSON, "content")
	if !tpiContent.Get("public_keys").IsArray() && !tpiContent.Get("public_key").Exists() {
		// Revoked (its content emptied).
		return "", fmt.Errorf("%w: the third-party invite was revoked", ErrForbidden)
	}
	var verified, valid bool
	var keyErr error
	for _, k := range authrules.PublicKeys([]byte(tpiContent.Raw)) {
		if !k.Verifies(signed) {
			continue
		}
		verified = true
		if keyValid == nil || k.ValidityURL == "" {
			valid = true
			break
		}
		if keyErr = keyValid(ctx, k.ValidityURL, k.Raw); keyErr == nil {
			valid = true
			break
		}
	}
	switch {
	case !verified:
		return "", fmt.Errorf("%w: the third-party invite is not signed by the identity server's key", ErrForbidden)
	case !valid:
		return "", fmt.Errorf("%w: the identity server's key could not be confirmed: %v", ErrForbidden, keyErr)
	}
	if m, err := s.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(mxid)); err == nil && (m.Membership == "join" || m.Membership == "invite") {
		// Already in the room or invited: an invite would demote a member.
		return m.EventID, nil
	}
	extra := map[string]any{"third_party_invite": map[string]any{
		"display_name": tpiContent.Get("display_name").Str, "signed": json.RawMessage(signed),
	}}
	return s.Invite(ctx, MembershipRequest{RoomID: roomID, Sender: tpi.Sender, Target: mxid, Extra: extra})
}

// ThirdPartyInviteSender returns the sender of a room's
// m.room.third_party_invite with the given token (a join with
// third_party_signed needs it to know who may exchange the invite).
func (s *Server) ThirdPartyInviteSender(ctx context.Context, roomID id.RoomID, token string) (id.UserID, error) {
	tpi, err := s.store.CurrentStateEvent(ctx, roomID, event.StateThirdPartyInvite.Type, token)
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrEventNotFound
	} else if err != nil {
		return "", err
	}
	return tpi.Sender, nil
}

// MayInvite reports whether user is joined to the room with the power level
// to invite (which the auth rules also ask of m.room.third_party_invite).
func (s *Server) MayInvite(ctx context.Context, roomID id.RoomID, user id.UserID) (bool, error) {
	return s.memberHasPower(ctx, roomID, user, (*event.PowerLevelsEventContent).Invite)
}

// AwaitInvite waits, up to timeout, until this server has user's invite into
// a room it is in. An invite issued by another server for a room this server
// is in arrives in a federation transaction shortly after the other server
// answered; joining before it arrives would fail the auth rules. Rooms this
// server is not in are joined through the other server and need no wait.
func (s *Server) AwaitInvite(ctx context.Context, roomID id.RoomID, user id.UserID, timeout time.Duration) {
	if !s.resident(ctx, roomID) {
		return
	}
	deadline := time.Now().Add(timeout)
	for {
		m, err := s.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user))
		if err == nil && (m.Membership == "invite" || m.Membership == "join") {
			return
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
