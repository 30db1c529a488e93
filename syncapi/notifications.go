package syncapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"parley/internal/authn"
	"parley/internal/eventutil"
	"parley/internal/httputil"
	"parley/storage"
)

// PushEvent is a newly persisted room event, as the roomserver hands it to
// ProcessEvent for push rule evaluation.
type PushEvent struct {
	// Event is the client-format event (RoomID, Sender, Type, StateKey, Content set).
	Event *event.Event
	// Raw is the client-format JSON stored for /notifications and sent to gateways.
	Raw json.RawMessage
	// StreamPos is the event's PDU stream position.
	StreamPos int64
	// Members are the users joined to the room after the event.
	Members []id.UserID
	// DisplayNames holds members' display names (contains_display_name).
	DisplayNames map[id.UserID]string
	// PowerLevels is the room's power levels (sender_notification_permission); nil for defaults.
	PowerLevels *event.PowerLevelsEventContent
	// RoomName is the room's name, if any, for push payloads.
	RoomName string
}

// pushRoom implements mautrix pushrules.Room for one member.
type pushRoom struct {
	ev   *PushEvent
	user id.UserID
}

// GetOwnDisplayname implements pushrules.Room.
func (p pushRoom) GetOwnDisplayname() string { return p.ev.DisplayNames[p.user] }

// GetMemberCount implements pushrules.Room.
func (p pushRoom) GetMemberCount() int { return len(p.ev.Members) }

// GetPowerLevels implements pushrules.Room.
func (p pushRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	if p.ev.PowerLevels == nil {
		return &event.PowerLevelsEventContent{}
	}
	return p.ev.PowerLevels
}

// threadOf returns the thread an event belongs to: its thread root, or "main".
func threadOf(ev *event.Event) string {
	rel, ok := ev.Content.Raw["m.relates_to"].(map[string]any)
	if ok && rel["rel_type"] == "m.thread" {
		if root, ok := rel["event_id"].(string); ok && root != "" {
			return root
		}
	}
	return "main"
}

// evaluate runs user's push rules over ev and returns the matching actions.
func (in *Inbox) evaluate(ctx context.Context, user id.UserID, ev *PushEvent) (pushrules.PushActionArray, error) {
	mrs, err := in.compiledRules(ctx, user)
	if err != nil {
		return nil, err
	}
	return pushActions(mrs, pushRoom{ev: ev, user: user}, ev.Event), nil
}

// compiledRules returns user's ruleset as mautrix evaluates it, cached until
// the user changes a rule through this process.
func (in *Inbox) compiledRules(ctx context.Context, user id.UserID) (*pushrules.PushRuleset, error) {
	in.rulesMu.Lock()
	mrs, ok := in.rulesCache[user]
	in.rulesMu.Unlock()
	if ok {
		return mrs, nil
	}
	rs, err := in.ruleset(ctx, user)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return nil, err
	}
	mrs = &pushrules.PushRuleset{}
	if err := json.Unmarshal(b, mrs); err != nil {
		return nil, err
	}
	in.rulesMu.Lock()
	if len(in.rulesCache) >= maxCachedRulesets {
		clear(in.rulesCache)
	}
	in.rulesCache[user] = mrs
	in.rulesMu.Unlock()
	return mrs, nil
}

// maxCachedRulesets bounds the compiled ruleset cache.
const maxCachedRulesets = 10000

// forgetRules drops user's compiled ruleset after a change.
func (in *Inbox) forgetRules(user id.UserID) {
	in.rulesMu.Lock()
	delete(in.rulesCache, user)
	in.rulesMu.Unlock()
}

// ProcessEvent evaluates push rules for a new event for every local member
// except the sender (and a local invitee), stores notifications (which
// drive unread counts and /notifications) and queues pushes to the users'
// HTTP pushers, then wakes the affected users.
func (in *Inbox) ProcessEvent(ctx context.Context, ev *PushEvent) error {
	var r evalResult
	if err := in.evaluateEvent(ctx, ev, &r); err != nil {
		return err
	}
	if err := in.storeResults(ctx, &r); err != nil {
		return err
	}
	in.notifier.WakeUsers(r.notified...)
	return nil
}

// evalResult collects what evaluating one or more events produced.
type evalResult struct {
	notes    []storage.Notification
	jobs     []storage.PushJob
	notified []id.UserID
}

// storeResults stores notifications and push jobs in one transaction, then
// starts the push sender. Waking the notified users is the caller's job.
func (in *Inbox) storeResults(ctx context.Context, r *evalResult) error {
	if len(r.notes) == 0 && len(r.jobs) == 0 {
		return nil
	}
	if err := in.store.AddNotifications(ctx, r.notes, r.jobs); err != nil {
		return err
	}
	if len(r.jobs) > 0 {
		in.pusher.kick()
	}
	return nil
}

// evaluateEvent runs push rules for ev and adds its notifications and push jobs to r.
func (in *Inbox) evaluateEvent(ctx context.Context, ev *PushEvent, r *evalResult) error {
	if ev.Event.Content.Raw == nil && len(ev.Event.Content.VeryRaw) > 0 {
		_ = json.Unmarshal(ev.Event.Content.VeryRaw, &ev.Event.Content.Raw)
	}
	if ev.Event.Content.Raw == nil {
		ev.Event.Content.Raw = map[string]any{}
	}
	targets := make([]id.UserID, 0, len(ev.Members)+1)
	seen := map[id.UserID]bool{}
	for _, m := range ev.Members {
		if m != ev.Event.Sender && in.isLocal(m) && !seen[m] {
			seen[m] = true
			targets = append(targets, m)
		}
	}
	if ev.Event.Type == event.StateMember && ev.Event.StateKey != nil {
		invitee := id.UserID(*ev.Event.StateKey)
		if ev.Event.Content.Raw["membership"] == "invite" && in.isLocal(invitee) && !seen[invitee] && invitee != ev.Event.Sender {
			targets = append(targets, invitee)
		}
	}
	thread := threadOf(ev.Event)
	var notes []storage.Notification
	var notified []id.UserID
	tweaks := map[id.UserID]pushrules.PushActionArray{}
	for _, u := range targets {
		acts, err := in.evaluate(ctx, u, ev)
		if err != nil {
			return err
		}
		should := acts.Should()
		if !should.Notify {
			continue
		}
		actJSON, _ := json.Marshal(acts)
		notes = append(notes, storage.Notification{UserID: u, RoomID: ev.Event.RoomID, EventID: ev.Event.ID, ThreadID: thread,
			EventPos: ev.StreamPos, TS: ev.Event.Timestamp, Highlight: should.Highlight, Actions: actJSON})
		notified = append(notified, u)
		tweaks[u] = acts
	}
	if len(notes) == 0 {
		return nil
	}
	jobs, err := in.pushJobs(ctx, ev, notified, tweaks)
	if err != nil {
		return err
	}
	r.notes = append(r.notes, notes...)
	r.jobs = append(r.jobs, jobs...)
	r.notified = append(r.notified, notified...)
	return nil
}

// notifStream brings back rooms whose unread counts a receipt reset (on any
// device of the user; new notifications come with their event in the PDU
// stream), lists every joined room on an initial sync, and as a Finisher fills unread_notifications
// (and unread_thread_notifications) of every joined room in the response.
type notifStream struct{ in *Inbox }

// Name implements Stream.
func (s *notifStream) Name() StreamName { return StreamNotif }

// Position implements Stream.
func (s *notifStream) Position(ctx context.Context) (int64, error) {
	return s.in.store.NotifPosition(ctx)
}

// PositionIn implements SnapshotStream.
func (s *notifStream) PositionIn(p storage.Positions) int64 { return p.Notif }

// Fill implements Stream.
func (s *notifStream) Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error) {
	joined, all, err := s.in.joinedIn(ctx, req.Device.UserID, resp)
	if err != nil {
		return false, err
	}
	if req.Initial() || req.FullState {
		// An initial sync lists every joined room, each with its counts.
		for _, r := range all {
			if roomAllowed(req.Filter, r) {
				resp.JoinedRoom(r)
			}
		}
		return false, nil
	}
	rooms, err := s.in.store.NotifChangedRooms(ctx, req.Device.UserID, from, to)
	if err != nil || len(rooms) == 0 {
		return false, err
	}
	found := false
	for _, r := range rooms {
		if _, ok := joined[r]; ok && roomAllowed(req.Filter, r) {
			resp.JoinedRoom(r)
			found = true
		}
	}
	return found, nil
}

// Finish implements Finisher: unread counts, then the filter's event_fields
// over every event of the response (whichever stream added it).
func (s *notifStream) Finish(ctx context.Context, req *Request, resp *Response) error {
	if err := s.fillCounts(ctx, req, resp); err != nil {
		return err
	}
	if req.Filter != nil && len(req.Filter.EventFields) > 0 {
		applyEventFieldsAll(resp, req.Filter.EventFields)
	}
	return nil
}

// applyEventFieldsAll trims every event of resp to fields.
func applyEventFieldsAll(resp *Response, fields []string) {
	trim := func(l *EventList) {
		for i, ev := range l.Events {
			l.Events[i] = ApplyEventFields(ev, fields)
		}
	}
	for _, l := range []*EventList{resp.Presence, resp.AccountData, resp.ToDevice} {
		if l != nil {
			trim(l)
		}
	}
	for _, jr := range resp.Rooms.Join {
		trim(&jr.State)
		trim(&jr.Ephemeral)
		trim(&jr.AccountData)
		trim(&EventList{Events: jr.Timeline.Events})
	}
	for _, lr := range resp.Rooms.Leave {
		trim(&lr.State)
		trim(&lr.AccountData)
		trim(&EventList{Events: lr.Timeline.Events})
	}
	for _, ir := range resp.Rooms.Invite {
		trim(&ir.InviteState)
	}
	for _, kr := range resp.Rooms.Knock {
		trim(&kr.KnockState)
	}
}

// fillCounts sets unread_notifications (and unread_thread_notifications) of every joined room in resp.
func (s *notifStream) fillCounts(ctx context.Context, req *Request, resp *Response) error {
	if len(resp.Rooms.Join) == 0 {
		return nil
	}
	rooms := make([]id.RoomID, 0, len(resp.Rooms.Join))
	for r, jr := range resp.Rooms.Join {
		rooms = append(rooms, r)
		jr.UnreadNotifications = &UnreadCounts{}
	}
	counts, err := s.in.store.UnreadCounts(ctx, req.Device.UserID, rooms)
	if err != nil {
		return err
	}
	tl := roomFilterPart(req.Filter, "timeline")
	perThread := tl != nil && tl.UnreadThreadNotifications
	for _, c := range counts {
		jr := resp.Rooms.Join[c.RoomID]
		if !perThread || c.ThreadID == "main" {
			jr.UnreadNotifications.NotificationCount += c.Notifications
			jr.UnreadNotifications.HighlightCount += c.Highlights
			continue
		}
		if jr.UnreadThreadNotifications == nil {
			jr.UnreadThreadNotifications = map[string]*UnreadCounts{}
		}
		jr.UnreadThreadNotifications[c.ThreadID] = &UnreadCounts{NotificationCount: c.Notifications, HighlightCount: c.Highlights}
	}
	return nil
}

// getNotifications handles GET /notifications.
func (in *Inbox) getNotifications(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	q := r.URL.Query()
	var before int64
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return httputil.InvalidParam("invalid from token")
		}
		before = n
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return httputil.InvalidParam("limit must be a non-negative integer")
		}
		limit = min(n, 1000)
	}
	only := q.Get("only")
	ns, err := in.store.Notifications(r.Context(), dev.UserID, before, limit, only == "highlight")
	if err != nil {
		return err
	}
	type note struct {
		Actions    json.RawMessage `json:"actions"`
		Event      json.RawMessage `json:"event"`
		ProfileTag *string         `json:"profile_tag"` // always null: notifications are not tied to one pusher
		Read       bool            `json:"read"`
		RoomID     id.RoomID       `json:"room_id"`
		TS         int64           `json:"ts"`
	}
	out := struct {
		NextToken     string `json:"next_token,omitempty"`
		Notifications []note `json:"notifications"`
	}{Notifications: []note{}}
	// Events are read from the room store rather than copied per notification,
	// so a redacted event is listed redacted.
	ids := make([]id.EventID, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.EventID)
	}
	events := map[id.EventID]json.RawMessage{}
	if len(ids) > 0 {
		evs, err := in.roomStore.GetEvents(r.Context(), ids)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		for _, ev := range evs {
			events[ev.EventID] = eventutil.ClientEvent(nil, eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID),
				RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: now})
		}
	}
	for _, n := range ns {
		ev := events[n.EventID]
		if ev == nil {
			continue // purged
		}
		out.Notifications = append(out.Notifications, note{Actions: n.Actions, Event: ev, Read: n.Read, RoomID: n.RoomID, TS: n.TS})
	}
	if limit > 0 && len(ns) == limit {
		out.NextToken = strconv.FormatInt(ns[len(ns)-1].ID, 10)
	}
	return httputil.WriteJSON(w, http.StatusOK, out)
}
