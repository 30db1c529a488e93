package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/eventutil"
	"parley/roomserver"
	"parley/storage"
)

// RoomMembership implements Membership and EventLocator over the room
// storage the roomserver writes.
type RoomMembership struct {
	store storage.RoomStore
}

// NewRoomMembership returns a Membership reading room storage.
func NewRoomMembership(store storage.RoomStore) *RoomMembership { return &RoomMembership{store: store} }

// JoinedRooms implements Membership.
func (m *RoomMembership) JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error) {
	ms, err := m.store.UserMemberships(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]id.RoomID, 0, len(ms))
	for _, x := range ms {
		if x.Membership == "join" {
			out = append(out, x.RoomID)
		}
	}
	return out, nil
}

// IsJoined implements Membership.
func (m *RoomMembership) IsJoined(ctx context.Context, room id.RoomID, user id.UserID) (bool, error) {
	ev, err := m.store.CurrentStateEvent(ctx, room, event.StateMember.Type, string(user))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ev.Membership == "join", nil
}

// JoinedMembers implements Membership.
func (m *RoomMembership) JoinedMembers(ctx context.Context, room id.RoomID) ([]id.UserID, error) {
	ms, err := m.store.RoomMemberships(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]id.UserID, 0, len(ms))
	for _, x := range ms {
		if x.Membership == "join" {
			out = append(out, x.UserID)
		}
	}
	return out, nil
}

// EventStreamPos implements EventLocator.
func (m *RoomMembership) EventStreamPos(ctx context.Context, room id.RoomID, ev id.EventID) (int64, error) {
	e, err := m.store.GetEvent(ctx, ev)
	if err != nil {
		return 0, err
	}
	if e.RoomID != room || e.Outlier || e.Rejected {
		return 0, storage.ErrNotFound
	}
	return e.StreamPos, nil
}

// OnRoomEvent evaluates push rules for a committed event, stores its
// notifications and only then calls InboxDeps.AfterEvent (the PDU stream's
// wake-up). The roomserver calls it after each commit, before the send
// returns: once a client's send has returned, every other user's counts
// include the event, and a /sync woken by the event sees the counts it caused.
func (in *Inbox) OnRoomEvent(out roomserver.OutputEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in.processBatch(ctx, []roomserver.OutputEvent{out})
}

// EventNotifications implements roomserver.NotificationsFunc: it evaluates
// push rules for a local non-state event about to be persisted, so that its
// notifications are stored in the event's own transaction. The roomserver
// calls it under the room's write lock, so the room's current state is the
// state after the event. State events (which change the push context) and
// events that queue pushes to HTTP pushers are left to OnRoomEvent.
func (in *Inbox) EventNotifications(ctx context.Context, ev *storage.Event, stateVer uint64) ([]storage.Notification, bool) {
	if ev.StateKey != nil {
		// Drop the cached context now, not at publication: the next event
		// into the room may be evaluated before this one is published.
		in.forgetRoomContext(ev.RoomID)
		return nil, false
	}
	pe, err := in.pushEvent(ctx, ev, stateVer)
	if err != nil {
		return nil, false
	}
	if pe == nil {
		return nil, true
	}
	var r evalResult
	if err := in.evaluateEvent(ctx, pe, &r); err != nil || len(r.jobs) > 0 {
		return nil, false
	}
	return r.notes, true
}

// processBatch evaluates, stores and then announces a batch of events.
func (in *Inbox) processBatch(ctx context.Context, batch []roomserver.OutputEvent) {
	var r evalResult
	for _, out := range batch {
		ev := out.Event
		if ev == nil || ev.Rejected || ev.Outlier || ev.SoftFailed {
			continue
		}
		in.carryRulesOnJoin(ctx, ev)
		if out.PushEvaluated {
			// Stored with the event (EventNotifications).
			for _, n := range out.Notifications {
				r.notified = append(r.notified, n.UserID)
			}
			continue
		}
		pe, err := in.pushEvent(ctx, ev, 0)
		if err == nil && pe != nil {
			err = in.evaluateEvent(ctx, pe, &r)
		}
		if err != nil && ctx.Err() == nil {
			in.log.Error("push rule evaluation failed", zap.String("room_id", string(ev.RoomID)),
				zap.String("event_id", string(ev.EventID)), zap.Error(err))
		}
	}
	if err := in.storeResults(ctx, &r); err != nil && ctx.Err() == nil {
		in.log.Error("store notifications", zap.Int("events", len(batch)), zap.Error(err))
	}
	// The PDU stream's wake-up reaches every room member, notified or not;
	// without one, wake the notified users here.
	if in.afterEvent == nil {
		in.notifier.WakeUsers(r.notified...)
		return
	}
	for _, out := range batch {
		in.afterEvent(out)
	}
}

// roomPushContext is what push rules need about a room's current state.
type roomPushContext struct {
	// stateVer is the roomserver state version it was read at (0: unknown).
	stateVer     uint64
	members      []id.UserID
	displayNames map[id.UserID]string
	powerLevels  *event.PowerLevelsEventContent
	name         string
}

// maxCachedRooms bounds the push context cache.
const maxCachedRooms = 4096

// roomContext returns the room's push context, cached until a state event
// arrives in the room (OnRoomEvent drops the entry first) or, when stateVer
// is set, until the roomserver's state version of the room changes (as when
// another process changed its state).
func (in *Inbox) roomContext(ctx context.Context, room id.RoomID, stateVer uint64) (*roomPushContext, error) {
	in.roomCtxMu.Lock()
	rc, ok := in.roomCtx[room]
	gen := in.roomCtxGen
	in.roomCtxMu.Unlock()
	if ok && (stateVer == 0 || rc.stateVer == stateVer) {
		return rc, nil
	}
	ms, err := in.roomStore.RoomMemberships(ctx, room)
	if err != nil {
		return nil, err
	}
	rc = &roomPushContext{displayNames: map[id.UserID]string{}, stateVer: stateVer}
	var memberEvents []id.EventID
	for _, m := range ms {
		if m.Membership == "join" {
			rc.members = append(rc.members, m.UserID)
			memberEvents = append(memberEvents, m.EventID)
		}
	}
	mevs, err := in.roomStore.GetEvents(ctx, memberEvents)
	if err != nil {
		return nil, err
	}
	for _, m := range mevs {
		var pdu struct {
			StateKey string `json:"state_key"`
			Content  struct {
				DisplayName string `json:"displayname"`
			} `json:"content"`
		}
		if json.Unmarshal(m.JSON, &pdu) == nil && pdu.Content.DisplayName != "" {
			rc.displayNames[id.UserID(pdu.StateKey)] = pdu.Content.DisplayName
		}
	}
	if pl, err := in.roomStore.CurrentStateEvent(ctx, room, event.StatePowerLevels.Type, ""); err == nil {
		var pdu struct {
			Content event.PowerLevelsEventContent `json:"content"`
		}
		if json.Unmarshal(pl.JSON, &pdu) == nil {
			rc.powerLevels = &pdu.Content
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	// The room's name for pushes: m.room.name, else the canonical alias.
	for _, st := range []struct{ typ, key string }{{event.StateRoomName.Type, "name"}, {event.StateCanonicalAlias.Type, "alias"}} {
		ev, err := in.roomStore.CurrentStateEvent(ctx, room, st.typ, "")
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var pdu struct {
			Content map[string]any `json:"content"`
		}
		if json.Unmarshal(ev.JSON, &pdu) == nil {
			if v, _ := pdu.Content[st.key].(string); v != "" {
				rc.name = v
				break
			}
		}
	}
	in.roomCtxMu.Lock()
	if gen == in.roomCtxGen {
		if len(in.roomCtx) >= maxCachedRooms {
			clear(in.roomCtx)
		}
		in.roomCtx[room] = rc
	}
	in.roomCtxMu.Unlock()
	return rc, nil
}

// forgetRoomContext drops a room's cached push context after a state change.
func (in *Inbox) forgetRoomContext(room id.RoomID) {
	in.roomCtxMu.Lock()
	delete(in.roomCtx, room)
	in.roomCtxGen++
	in.roomCtxMu.Unlock()
}

// pushEvent gathers what push rules need about a stored event; nil when no
// local user other than the sender can be notified.
func (in *Inbox) pushEvent(ctx context.Context, ev *storage.Event, stateVer uint64) (*PushEvent, error) {
	if in.roomStore == nil {
		return nil, nil
	}
	if ev.StateKey != nil {
		in.forgetRoomContext(ev.RoomID)
	}
	rc, err := in.roomContext(ctx, ev.RoomID, stateVer)
	if err != nil {
		return nil, err
	}
	anyLocal := false
	for _, m := range rc.members {
		if m != ev.Sender && in.isLocal(m) {
			anyLocal = true
			break
		}
	}
	invite := ev.Type == event.StateMember.Type && ev.Membership == "invite" && ev.StateKey != nil && in.isLocal(id.UserID(*ev.StateKey))
	if !anyLocal && !invite {
		return nil, nil
	}
	raw := eventutil.ClientEvent(nil, eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID), RoomID: string(ev.RoomID),
		Unsigned: ev.Unsigned, NowMS: time.Now().UnixMilli()})
	var cev event.Event
	if err := json.Unmarshal(raw, &cev); err != nil {
		return nil, err
	}
	return &PushEvent{Event: &cev, Raw: raw, StreamPos: ev.StreamPos, Members: rc.members, DisplayNames: rc.displayNames,
		PowerLevels: rc.powerLevels, RoomName: rc.name}, nil
}
