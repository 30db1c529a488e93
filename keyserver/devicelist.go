package keyserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
	"parley/syncapi"
)

// DeviceListStream is the sync stream of device_lists.changed/left.
type DeviceListStream struct {
	s *Server
}

// DeviceListStream returns the device-list sync stream.
func (s *Server) DeviceListStream() *DeviceListStream { return &DeviceListStream{s: s} }

// Name implements syncapi.Stream.
func (d *DeviceListStream) Name() syncapi.StreamName { return syncapi.StreamDeviceList }

// Position implements syncapi.Stream.
func (d *DeviceListStream) Position(ctx context.Context) (int64, error) {
	return d.s.store.DeviceListPosition(ctx)
}

// PositionIn implements syncapi.SnapshotStream.
func (d *DeviceListStream) PositionIn(p storage.Positions) int64 { return p.DeviceList }

// Fill implements syncapi.Stream. An initial sync carries no device lists:
// the client queries the keys of everyone it shares a room with anyway.
func (d *DeviceListStream) Fill(ctx context.Context, req *syncapi.Request, from, to int64, resp *syncapi.Response) (bool, error) {
	if req.Initial() {
		return false, nil
	}
	changed, left, err := d.s.deviceListChanges(ctx, req.Device.UserID, from, to)
	if err != nil {
		return false, err
	}
	resp.DeviceLists.Changed = append(resp.DeviceLists.Changed, changed...)
	resp.DeviceLists.Left = append(resp.DeviceLists.Left, left...)
	return len(changed)+len(left) > 0, nil
}

// deviceListChanges computes what observer must be told about device lists
// between two positions: users sharing a room with observer (or observer
// itself) whose devices changed, and users who stopped sharing a room.
func (s *Server) deviceListChanges(ctx context.Context, observer id.UserID, from, to int64) (changed, left []id.UserID, err error) {
	if from >= to {
		return []id.UserID{}, []id.UserID{}, nil
	}
	entries, err := s.store.DeviceListChanges(ctx, from, to, observer)
	if err != nil {
		return nil, nil, fmt.Errorf("device list changes: %w", err)
	}
	var shared map[id.UserID]struct{}
	state := map[id.UserID]bool{} // true: changed, false: left
	for _, c := range entries {
		switch {
		case c.Observer == observer:
			state[c.UserID] = !c.Left
		case c.Observer == "":
			if c.UserID != observer {
				if shared == nil {
					if shared, err = s.sharedWith(ctx, observer); err != nil {
						return nil, nil, err
					}
				}
				if _, ok := shared[c.UserID]; !ok {
					continue
				}
			}
			state[c.UserID] = true
		}
	}
	changed, left = []id.UserID{}, []id.UserID{}
	for u, ch := range state {
		if ch {
			changed = append(changed, u)
		} else {
			left = append(left, u)
		}
	}
	slices.Sort(changed)
	slices.Sort(left)
	return changed, left, nil
}

func (s *Server) sharedWith(ctx context.Context, user id.UserID) (map[id.UserID]struct{}, error) {
	if s.rooms == nil {
		return map[id.UserID]struct{}{}, nil
	}
	shared, err := s.rooms.SharedRoomUsers(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("shared room users: %w", err)
	}
	return shared, nil
}

// keyChanges handles GET /keys/changes?from=&to= (sync tokens).
func (s *Server) keyChanges(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" {
		return httputil.MissingParam("from and to are required")
	}
	from, err := syncapi.ParseToken(q.Get("from"))
	if err != nil {
		return httputil.InvalidParam("invalid from token: %v", err)
	}
	to, err := syncapi.ParseToken(q.Get("to"))
	if err != nil {
		return httputil.InvalidParam("invalid to token: %v", err)
	}
	changed, left, err := s.deviceListChanges(r.Context(), dev.UserID, from[syncapi.StreamDeviceList], to[syncapi.StreamDeviceList])
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"changed": changed, "left": left})
}

// OnEvent is told about every committed room event (the roomserver's
// OnEvent callback, chained in internal/homeserver); it acts on member events.
func (s *Server) OnEvent(ev *storage.Event) {
	if ev.Type != event.StateMember.Type || ev.StateKey == nil || ev.Rejected || ev.SoftFailed || ev.Outlier {
		return
	}
	s.MemberEvent(context.Background(), ev.RoomID, id.UserID(*ev.StateKey), ev.Membership)
}

// MemberEvent is told about every committed m.room.member event: a join or
// a departure (leave, ban) of target changes who tracks whose devices. An
// invite shows the invitee in the room's local members' device_lists.changed
// (their clients may share room keys with invited users); a knock changes
// nothing.
func (s *Server) MemberEvent(ctx context.Context, room id.RoomID, target id.UserID, membership string) {
	switch membership {
	case "join":
		s.MembershipChanged(ctx, room, target, true)
	case "leave", "ban":
		s.MembershipChanged(ctx, room, target, false)
	case "invite":
		s.invited(ctx, room, target)
	}
}

// invited records target's devices as changed for the room's joined local
// members.
func (s *Server) invited(ctx context.Context, room id.RoomID, target id.UserID) {
	if s.rooms == nil {
		return
	}
	members, err := s.rooms.RoomJoinedUsers(ctx, room)
	if err != nil {
		s.log.Warn("device list invite", zap.String("room_id", string(room)), zap.Error(err))
		return
	}
	var changes []storage.DeviceListChange
	var wake []id.UserID
	for _, m := range members {
		if m != target && s.isLocal(m) {
			changes = append(changes, storage.DeviceListChange{UserID: target, Observer: m})
			wake = append(wake, m)
		}
	}
	s.recordChanges(ctx, room, changes, wake)
}

// recordChanges stores device-list changes caused by a membership change in
// room and wakes the users who see them.
func (s *Server) recordChanges(ctx context.Context, room id.RoomID, changes []storage.DeviceListChange, wake []id.UserID) {
	if len(changes) == 0 {
		return
	}
	if _, err := s.store.AddDeviceListChanges(ctx, changes); err != nil {
		s.log.Warn("record device list membership change", zap.String("room_id", string(room)), zap.Error(err))
		return
	}
	if s.notifier != nil {
		s.notifier.WakeUsers(wake...)
	}
}

// MembershipChanged records the device-list consequences of user joining
// (joined) or leaving a room: on a join, the user and the room's other
// members start tracking each other's devices (changed); on a leave, those
// who no longer share any room are told "left". It is called after the
// membership event is stored; errors are logged.
func (s *Server) MembershipChanged(ctx context.Context, room id.RoomID, user id.UserID, joined bool) {
	if s.rooms == nil {
		return
	}
	members, err := s.rooms.RoomJoinedUsers(ctx, room)
	if err != nil {
		s.log.Warn("device list membership change", zap.String("room_id", string(room)), zap.Error(err))
		return
	}
	var shared map[id.UserID]struct{}
	if !joined {
		if shared, err = s.rooms.SharedRoomUsers(ctx, user); err != nil {
			s.log.Warn("device list membership change", zap.String("user_id", string(user)), zap.Error(err))
			return
		}
	}
	var changes []storage.DeviceListChange
	var wake []id.UserID
	userLocal := s.isLocal(user)
	for _, m := range members {
		if m == user {
			continue
		}
		if !joined {
			if _, still := shared[m]; still {
				continue
			}
		}
		if s.isLocal(m) {
			changes = append(changes, storage.DeviceListChange{UserID: user, Observer: m, Left: !joined})
			wake = append(wake, m)
		}
		if userLocal {
			changes = append(changes, storage.DeviceListChange{UserID: m, Observer: user, Left: !joined})
		}
	}
	if userLocal {
		wake = append(wake, user)
	}
	s.recordChanges(ctx, room, changes, wake)
}
