package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/logging"
	"parley/storage"
)

// ErrAliasNotFound: the alias is unknown.
var ErrAliasNotFound = errors.New("alias not found")

// DeleteAlias removes a local alias. Its creator, a server admin, or a room
// member allowed to change m.room.canonical_alias may delete it. When the
// room's canonical alias event names the alias, an updated event without it is
// sent.
func (s *Server) DeleteAlias(ctx context.Context, user id.UserID, isAdmin bool, alias id.RoomAlias) error {
	roomID, creator, err := s.store.ResolveAlias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrAliasNotFound
	} else if err != nil {
		return err
	}
	if creator != user && !isAdmin {
		ok, err := s.canSendState(ctx, roomID, user, event.StateCanonicalAlias.Type)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: you may not delete this alias", ErrForbidden)
		}
	}
	if err := s.store.DeleteAlias(ctx, alias); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	s.dropCanonicalAlias(ctx, roomID, user, alias)
	return nil
}

// canSendState reports whether user is joined and has the power level to send
// a state event of evType in the room's current state.
func (s *Server) canSendState(ctx context.Context, roomID id.RoomID, user id.UserID, evType string) (bool, error) {
	ok, err := s.memberHasPower(ctx, roomID, user, func(pl *event.PowerLevelsEventContent) int {
		return pl.GetEventLevel(event.Type{Type: evType, Class: event.StateEventType})
	})
	if errors.Is(err, ErrRoomNotFound) {
		return false, nil
	}
	return ok, err
}

// memberHasPower reports whether user is joined to the room and a creator
// (infinite power in v12) or has at least the power level need asks for.
func (s *Server) memberHasPower(ctx context.Context, roomID id.RoomID, user id.UserID, need func(*event.PowerLevelsEventContent) int) (bool, error) {
	r, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return false, err
	}
	defer r.mu.Unlock()
	w := newWorking(r)
	if w.membership(user) != event.MembershipJoin {
		return false, nil
	}
	if s.isCreator(w, user) {
		return true, nil
	}
	var pl event.PowerLevelsEventContent
	if e, ok := w.get(event.StatePowerLevels.Type, ""); ok {
		_ = json.Unmarshal(e.pdu.Content, &pl)
	}
	return pl.GetUserLevel(user) >= need(&pl), nil
}

// dropCanonicalAlias removes alias from the room's m.room.canonical_alias, if present.
func (s *Server) dropCanonicalAlias(ctx context.Context, roomID id.RoomID, user id.UserID, alias id.RoomAlias) {
	ev, err := s.store.CurrentStateEvent(ctx, roomID, event.StateCanonicalAlias.Type, "")
	if err != nil {
		return
	}
	var pdu struct {
		Content map[string]any `json:"content"`
	}
	if json.Unmarshal(ev.JSON, &pdu) != nil || pdu.Content == nil {
		return
	}
	changed := false
	if a, _ := pdu.Content["alias"].(string); a == string(alias) {
		delete(pdu.Content, "alias")
		changed = true
	}
	if alts, ok := pdu.Content["alt_aliases"].([]any); ok {
		kept := slices.DeleteFunc(slices.Clone(alts), func(v any) bool { return v == string(alias) })
		if len(kept) != len(alts) {
			pdu.Content["alt_aliases"] = kept
			changed = true
		}
	}
	if !changed {
		return
	}
	content, _ := json.Marshal(pdu.Content)
	sk := ""
	if _, err := s.Send(ctx, SendRequest{RoomID: roomID, Sender: user, Type: event.StateCanonicalAlias.Type, StateKey: &sk, Content: content}); err != nil {
		s.log.Info("could not remove deleted alias from the canonical alias event", logging.RoomID(roomID), zap.Error(err))
	}
}
