package roomserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

const roomIDAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// newRoomID makes a random room ID on server (room versions before 12).
func newRoomID(server string) id.RoomID { return id.RoomID("!" + randomString(18) + ":" + server) }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = roomIDAlphabet[int(b[i])%len(roomIDAlphabet)]
	}
	return string(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func strPtr(s string) *string { return &s }

// CreateRoom creates a room as POST /createRoom describes: the create event,
// the creator's join, power levels, alias, preset rules, initial_state, name,
// topic and invites, all persisted in one transaction.
func (s *Server) CreateRoom(ctx context.Context, req CreateRoomRequest) (id.RoomID, id.RoomAlias, error) {
	w, newRoom, alias, err := s.buildRoom(ctx, req)
	if err != nil {
		return "", "", err
	}
	if _, err := s.commit(ctx, w, newRoom); err != nil {
		return "", "", err
	}
	if alias != "" {
		if err := s.store.CreateAlias(ctx, alias, w.roomID, req.Creator); err != nil {
			s.log.Warn("alias taken while the room was created")
		}
	}
	s.publishWorking(w)
	// Remote invitees' servers must countersign their invites, so those go
	// out one by one once the room exists. A server that cannot be reached
	// does not undo the room: the inviter sees who is missing and can retry.
	for _, u := range req.Invite {
		if u.Homeserver() == s.serverName {
			continue
		}
		var extra map[string]any
		if req.IsDirect {
			extra = map[string]any{"is_direct": true}
		}
		if _, err := s.Invite(ctx, MembershipRequest{RoomID: w.roomID, Sender: req.Creator, Target: u, Extra: extra}); err != nil {
			s.log.Warn("createRoom: invite of a remote user failed", zap.Stringer("room_id", w.roomID), zap.Stringer("user_id", u), zap.Error(err))
		}
	}
	return w.roomID, alias, nil
}

// buildRoom builds and authorises the events of a new room (CreateRoom)
// without storing anything; commit(w, newRoom) persists them.
func (s *Server) buildRoom(ctx context.Context, req CreateRoomRequest) (*working, *storage.Room, id.RoomAlias, error) {
	version := req.RoomVersion
	if version == "" {
		version = s.cfg.Rooms.DefaultVersion
	}
	if !Supported(version) {
		return nil, nil, "", fmt.Errorf("%w: %q", ErrUnsupportedRoomVersion, version)
	}
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	}
	if preset != "private_chat" && preset != "public_chat" && preset != "trusted_private_chat" {
		return nil, nil, "", fmt.Errorf("%w: unknown preset %q", ErrInvalidParam, preset)
	}
	if req.Visibility != "" && req.Visibility != "public" && req.Visibility != "private" {
		return nil, nil, "", fmt.Errorf("%w: visibility must be public or private", ErrInvalidParam)
	}
	for _, u := range req.Invite {
		if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
			return nil, nil, "", fmt.Errorf("%w: invalid user ID %q in invite", ErrInvalidParam, u)
		}
	}
	var alias id.RoomAlias
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ":# \t\n") {
			return nil, nil, "", fmt.Errorf("%w: invalid room_alias_name", ErrInvalidParam)
		}
		alias = id.NewRoomAlias(req.RoomAliasName, s.serverName)
		if s.cfg.Moderation.AliasDenied(string(alias)) {
			return nil, nil, "", fmt.Errorf("%w: the alias %s is not allowed on this server", ErrForbidden, alias)
		}
		if _, _, err := s.store.ResolveAlias(ctx, alias); err == nil {
			return nil, nil, "", fmt.Errorf("%w: %s", ErrRoomInUse, alias)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, nil, "", err
		}
	}

	w := &working{version: version, overlay: map[storage.StateKeyTuple]stateEntry{}}
	if !version.RoomIDIsCreateEventID() {
		w.roomID = req.roomID
		if w.roomID == "" {
			w.roomID = newRoomID(s.serverName)
		}
	}
	creator := req.Creator
	state := func(evType, stateKey string, content any) error {
		var b []byte
		if raw, ok := content.([]byte); ok {
			b = raw
		} else {
			b = mustJSON(content)
		}
		_, err := s.add(w, eventSpec{Sender: creator, Type: evType, StateKey: strPtr(stateKey), Content: b})
		if errors.Is(err, ErrForbidden) {
			return fmt.Errorf("%w: %s: %v", ErrInvalidRoomState, evType, err)
		} else if err != nil {
			return fmt.Errorf("%s: %w", evType, err)
		}
		return nil
	}

	// 1. m.room.create
	createContent := map[string]any{}
	for k, v := range req.CreationContent {
		createContent[k] = v
	}
	createContent["room_version"] = version
	if version.CreatorInContent() {
		createContent["creator"] = creator
	}
	if preset == "trusted_private_chat" && version.PrivilegedRoomCreators() && len(req.Invite) > 0 {
		createContent["additional_creators"] = req.Invite
	}
	if err := state(event.StateCreate.Type, "", createContent); err != nil {
		return nil, nil, "", err
	}
	// 2. the creator joins
	creatorContent := map[string]any{"membership": "join"}
	s.addProfile(ctx, creator, creatorContent)
	if err := state(event.StateMember.Type, string(creator), creatorContent); err != nil {
		return nil, nil, "", err
	}
	// 3. power levels: defaults, preset, then power_level_content_override
	users := map[string]any{}
	if !version.PrivilegedRoomCreators() {
		users[string(creator)] = 100
		if preset == "trusted_private_chat" {
			for _, u := range req.Invite {
				users[string(u)] = 100
			}
		}
	}
	pl := map[string]any{
		"users": users, "users_default": 0, "events_default": 0, "state_default": 50,
		"ban": 50, "kick": 50, "redact": 50, "invite": 50,
		"events": map[string]any{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
			"m.room.server_acl": 100, "m.room.encryption": 100,
		},
		"notifications": map[string]any{"room": 50},
	}
	if preset != "public_chat" {
		pl["invite"] = 0
	}
	plJSON := mustJSON(pl)
	if len(req.PowerLevelContentOverride) > 0 {
		var merged map[string]json.RawMessage
		_ = json.Unmarshal(plJSON, &merged)
		maps.Copy(merged, req.PowerLevelContentOverride)
		plJSON = mustJSON(merged)
	}
	if err := state(event.StatePowerLevels.Type, "", plJSON); err != nil {
		return nil, nil, "", err
	}
	// 4. canonical alias
	if alias != "" {
		if err := state(event.StateCanonicalAlias.Type, "", map[string]any{"alias": alias}); err != nil {
			return nil, nil, "", err
		}
	}
	// 5. preset rules, except those initial_state sets itself (as Synapse:
	// the room then has one event of the type, not the preset's and a replacement)
	inInitial := func(evType string) bool {
		return slices.ContainsFunc(req.InitialState, func(is InitialStateEvent) bool { return is.Type == evType && is.StateKey == "" })
	}
	joinRule, guest := "invite", "can_join"
	if preset == "public_chat" {
		joinRule, guest = "public", "forbidden"
	}
	if !inInitial(event.StateJoinRules.Type) {
		if err := state(event.StateJoinRules.Type, "", map[string]any{"join_rule": joinRule}); err != nil {
			return nil, nil, "", err
		}
	}
	if !inInitial(event.StateHistoryVisibility.Type) {
		if err := state(event.StateHistoryVisibility.Type, "", map[string]any{"history_visibility": "shared"}); err != nil {
			return nil, nil, "", err
		}
	}
	if guest == "can_join" && !inInitial(event.StateGuestAccess.Type) { // only the private presets send m.room.guest_access (as Synapse)
		if err := state(event.StateGuestAccess.Type, "", map[string]any{"guest_access": guest}); err != nil {
			return nil, nil, "", err
		}
	}
	// 6. initial_state
	for _, is := range req.InitialState {
		if is.Type == "" {
			return nil, nil, "", fmt.Errorf("%w: initial_state event without type", ErrBadRequest)
		}
		if is.Type == event.StateCreate.Type || is.Type == event.StateMember.Type {
			return nil, nil, "", fmt.Errorf("%w: initial_state may not contain %s", ErrBadRequest, is.Type)
		}
		if err := state(is.Type, is.StateKey, []byte(is.Content)); err != nil {
			return nil, nil, "", err
		}
	}
	// 7. name and topic; the topic also as the m.topic content block (v1.15)
	if req.Name != nil {
		if err := state(event.StateRoomName.Type, "", map[string]any{"name": *req.Name}); err != nil {
			return nil, nil, "", err
		}
	}
	if req.Topic != nil {
		if err := state(event.StateTopic.Type, "", map[string]any{
			"topic": *req.Topic, "m.topic": map[string]any{"m.text": []map[string]string{{"body": *req.Topic, "mimetype": "text/plain"}}},
		}); err != nil {
			return nil, nil, "", err
		}
	}
	// 8. invites of local users (CreateRoom invites remote users afterwards)
	for _, u := range req.Invite {
		if u.Homeserver() != s.serverName {
			continue
		}
		c := map[string]any{"membership": "invite"}
		s.addProfile(ctx, u, c)
		if req.IsDirect {
			c["is_direct"] = true
		}
		if err := state(event.StateMember.Type, string(u), c); err != nil {
			return nil, nil, "", err
		}
	}
	if req.StoreThirdPartyInvites != nil {
		invs, err := req.StoreThirdPartyInvites(ctx, w.roomID)
		if err != nil {
			return nil, nil, "", err
		}
		for _, inv := range invs {
			c, err := inv.content()
			if err != nil {
				return nil, nil, "", err
			}
			if err := state(event.StateThirdPartyInvite.Type, inv.Token, c); err != nil {
				return nil, nil, "", err
			}
		}
	}

	newRoom := &storage.Room{RoomID: w.roomID, Version: version, Creator: creator, CreatedTS: nowMS(), IsPublic: req.Visibility == "public"}
	for _, ev := range w.events {
		ev.RoomID = w.roomID
	}
	return w, newRoom, alias, nil
}
