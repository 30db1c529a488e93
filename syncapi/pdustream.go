package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/eventutil"
	"parley/roomserver"
	"parley/storage"
)

// PDUStream is the room event stream of /sync: joined rooms' timelines and
// state, invites, knocks and left rooms. Its position is the roomserver's
// stream position.
type PDUStream struct {
	rooms *roomserver.Server
	store storage.RoomStore
	// accountData gives the user's m.ignored_user_list.
	accountData storage.AccountDataStore
	notifier    *Notifier
	serverName  string
	log         *zap.Logger
	// recent holds the newest events for incremental timelines; nil when
	// other processes share the database.
	recent *recentEvents
	// recentReads counts timelines read from recent.
	recentReads atomic.Int64
	ignored     ignoredCache
}

// RecentReads is how many timeline reads the recent events answered.
func (p *PDUStream) RecentReads() int64 { return p.recentReads.Load() }

// NewPDUStream returns the PDU stream over rooms.
func NewPDUStream(rooms *roomserver.Server, accountData storage.AccountDataStore, notifier *Notifier, log *zap.Logger) *PDUStream {
	p := &PDUStream{rooms: rooms, store: rooms.Store(), accountData: accountData, notifier: notifier, serverName: rooms.ServerName(), log: log}
	if m, ok := p.store.(storage.EventMutations); ok {
		if cf, ok := p.store.(storage.ChangeFeed); !ok || !cf.SharedDatabase() {
			p.recent = newRecentEvents(m)
		}
	}
	return p
}

// roomEvents reads room's events in (from, to], newest first, from the
// recent events when they cover the range.
func (p *PDUStream) roomEvents(ctx context.Context, room id.RoomID, from, to int64, limit int) ([]*storage.Event, error) {
	if p.recent != nil {
		if evs, ok := p.recent.roomEvents(room, from, to, limit); ok {
			p.recentReads.Add(1)
			return evs, nil
		}
	}
	return p.store.RoomEvents(ctx, room, from, to, limit, true)
}

// Name implements Stream.
func (p *PDUStream) Name() StreamName { return StreamPDU }

// Position implements Stream.
func (p *PDUStream) Position(ctx context.Context) (int64, error) { return p.rooms.Position(ctx) }

// PositionIn implements SnapshotStream.
func (p *PDUStream) PositionIn(pos storage.Positions) int64 { return pos.Events }

// trackedMemberships are the memberships whose room events wake a user.
var trackedMemberships = []string{"join", "invite", "knock"}

// Load registers every local joined, invited or knocking user with the notifier.
func (p *PDUStream) Load(ctx context.Context) error {
	ms, err := p.store.LocalMemberships(ctx, p.serverName, trackedMemberships)
	if err != nil {
		return err
	}
	for _, m := range ms {
		p.notifier.SetRoomUser(m.RoomID, m.UserID, true)
	}
	return nil
}

// LocalRoomUsers lists the local users of room whose /sync its events wake
// (joined, invited or knocking), read from storage.
func (p *PDUStream) LocalRoomUsers(ctx context.Context, room id.RoomID) ([]id.UserID, error) {
	ms, err := p.store.RoomMemberships(ctx, room)
	if err != nil {
		return nil, err
	}
	var out []id.UserID
	for _, m := range ms {
		if m.UserID.Homeserver() == p.serverName && slices.Contains(trackedMemberships, m.Membership) {
			out = append(out, m.UserID)
		}
	}
	return out, nil
}

// OnEvent keeps the notifier current and wakes the room's users. The
// roomserver calls it after each commit.
func (p *PDUStream) OnEvent(out roomserver.OutputEvent) {
	ev := out.Event
	if p.recent != nil {
		p.recent.add(ev) // before the wake-up, which may read it
	}
	if ev.Type == event.StateMember.Type && ev.StateKey != nil {
		target := id.UserID(*ev.StateKey)
		if target.Homeserver() == p.serverName {
			p.notifier.SetRoomUser(ev.RoomID, target, slices.Contains(trackedMemberships, ev.Membership))
		}
		p.notifier.WakeRoom(ev.RoomID, target)
		return
	}
	p.notifier.WakeRoom(ev.RoomID)
}

// roomFilter holds the parts of the sync filter the PDU stream applies.
type roomFilter struct {
	rooms, notRooms      []id.RoomID
	includeLeave         bool
	timeline             *mautrix.FilterPart
	state                *mautrix.FilterPart
	limit                int
	lazyMembers          bool
	includeRedundantLazy bool
}

func newRoomFilter(f *mautrix.Filter) *roomFilter {
	rf := &roomFilter{limit: 10}
	if f == nil || f.Room == nil {
		return rf
	}
	rf.rooms, rf.notRooms, rf.includeLeave = f.Room.Rooms, f.Room.NotRooms, f.Room.IncludeLeave
	rf.timeline, rf.state = f.Room.Timeline, f.Room.State
	if rf.timeline != nil {
		rf.limit = min(max(rf.timeline.Limit, 0), 500) // 0 is a valid limit: no timeline events
	}
	if rf.state != nil {
		rf.lazyMembers = rf.state.LazyLoadMembers
		rf.includeRedundantLazy = rf.state.IncludeRedundantMembers
	}
	return rf
}

func (rf *roomFilter) roomAllowed(r id.RoomID) bool {
	if rf.rooms != nil && !slices.Contains(rf.rooms, r) {
		return false
	}
	return !slices.Contains(rf.notRooms, r)
}

func typeMatch(pattern, t string) bool {
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(t, pattern[:len(pattern)-1])
	}
	return pattern == t
}

// partAllows applies a filter part's types/not_types/senders/not_senders.
func partAllows(fp *mautrix.FilterPart, ev *storage.Event) bool {
	if fp == nil {
		return true
	}
	if fp.Types != nil && !slices.ContainsFunc(fp.Types, func(t event.Type) bool { return typeMatch(t.Type, ev.Type) }) {
		return false
	}
	if slices.ContainsFunc(fp.NotTypes, func(t event.Type) bool { return typeMatch(t.Type, ev.Type) }) {
		return false
	}
	if fp.Senders != nil && !slices.Contains(fp.Senders, ev.Sender) {
		return false
	}
	return !slices.Contains(fp.NotSenders, ev.Sender)
}

// Fill implements Stream.
func (p *PDUStream) Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error) {
	user := req.Device.UserID
	rf := newRoomFilter(req.Filter)
	full := req.Initial() || req.FullState
	var ms []storage.Membership
	var err error
	var changed map[id.RoomID]bool
	if full {
		ms, err = p.store.UserMemberships(ctx, user)
	} else {
		// Only rooms with events in the range matter, and a membership that
		// changed in it is itself such an event.
		ms, err = p.store.UserMembershipsChanged(ctx, user, from, to)
		changed = make(map[id.RoomID]bool, len(ms))
		for _, m := range ms {
			changed[m.RoomID] = true
		}
	}
	if err != nil {
		return false, err
	}
	var forgotten map[id.RoomID]bool
	ignored, err := p.ignored.get(ctx, p.accountData, user, req.upto)
	if err != nil {
		return false, err
	}
	f := &filler{p: p, req: req, rf: rf, now: time.Now().UnixMilli(), resp: resp, ignored: ignored}
	found := false
	var joins []joinJob
	for _, m := range ms {
		if m.StreamPos > to || !rf.roomAllowed(m.RoomID) {
			continue // a membership newer than this response is sent next time
		}
		inRange := m.StreamPos > from
		switch m.Membership {
		case "join":
			if !full && !changed[m.RoomID] {
				continue
			}
			newlyJoined := false
			if !full && inRange {
				if newlyJoined, err = p.newlyJoined(ctx, m); err != nil {
					return false, err
				}
			}
			joins = append(joins, joinJob{m: m, full: full || newlyJoined})
		case "invite", "knock":
			if !full && !inRange {
				continue
			}
			added, err := f.stripped(ctx, m)
			if err != nil {
				return false, err
			}
			found = found || added
		case "leave", "ban":
			// Left rooms come in an initial sync only with include_leave, and
			// otherwise (full_state included) when the leave is new since "since".
			if req.Initial() && !rf.includeLeave || !req.Initial() && !inRange {
				continue
			}
			// A forgotten room stays out of initial syncs; a leave new since
			// "since" is still sent, as Synapse does, so that the user's other
			// devices learn of it even when the room was forgotten at once.
			if forgotten == nil && req.Initial() {
				if forgotten, err = p.store.ForgottenRooms(ctx, user); err != nil {
					return false, err
				}
			}
			if forgotten[m.RoomID] {
				continue
			}
			if err := f.left(ctx, m, from, full); err != nil {
				return false, err
			}
			found = true
		}
	}
	got, err := f.joinedAll(ctx, joins, from, to)
	return found || got, err
}

// newlyJoined reports whether m's join event was a join (not a profile change
// of an already joined member): only then does the room need its full state.
func (p *PDUStream) newlyJoined(ctx context.Context, m storage.Membership) (bool, error) {
	ev, err := p.store.GetEvent(ctx, m.EventID)
	if err != nil {
		return false, err
	}
	return gjson.GetBytes(ev.Unsigned, "prev_content.membership").Str != "join", nil
}

type joinJob struct {
	m    storage.Membership
	full bool
}

// syncWorkers bounds the rooms of one /sync built in parallel.
const syncWorkers = 4

// joinedAll fills rooms.join for every job, several rooms at a time: an
// initial sync is dominated by per-room database round trips.
func (f *filler) joinedAll(ctx context.Context, jobs []joinJob, from, to int64) (bool, error) {
	if len(jobs) <= 2 {
		found := false
		for _, j := range jobs {
			got, err := f.joined(ctx, j.m, from, to, j.full)
			if err != nil {
				return false, err
			}
			found = found || got
		}
		return found, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		found    atomic.Bool
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < min(syncWorkers, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				got, err := f.joined(ctx, jobs[i].m, from, to, jobs[i].full)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				if got {
					found.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return found.Load(), firstErr
}

// filler builds one response.
type filler struct {
	// mu guards resp's maps while rooms are filled in parallel.
	mu   sync.Mutex
	p    *PDUStream
	req  *Request
	rf   *roomFilter
	now  int64
	resp *Response
	// ignored are the users whose invites and non-state events are not sent.
	ignored map[id.UserID]bool
}

func (f *filler) format(evs []*storage.Event) []json.RawMessage {
	return f.formatWith(evs, nil)
}

// formatWith formats events; memberships, when set, gives each event's
// unsigned.membership.
func (f *filler) formatWith(evs []*storage.Event, memberships []string) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	dev := f.req.Device
	if f.req.Filter != nil && f.req.Filter.EventFormat == mautrix.EventFormatFederation {
		for i, ev := range evs {
			out[i] = eventutil.FederationEvent(ev.JSON, string(ev.EventID))
		}
		return out
	}
	for i, ev := range evs {
		in := eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID), RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: f.now}
		if ev.TxnID != "" && ev.Sender == dev.UserID && ev.DeviceID == dev.DeviceID {
			in.TxnID = ev.TxnID
		}
		if memberships != nil {
			in.Membership = memberships[i]
		}
		out[i] = eventutil.ClientEvent(make([]byte, 0, len(ev.JSON)+64), in)
	}
	return out
}

func formatPos(pos int64) string { return "t" + strconv.FormatInt(pos, 10) }

// prevBatch is the timeline's prev_batch: the position just before its first
// event, so /messages from it returns exactly the events before the timeline.
// A timeline that starts with the room's create event has nothing before it;
// there, as Synapse and Dendrite do (and SyTest expects), the token points at
// the create event itself so that paginating still returns it.
func prevBatch(tl []*storage.Event, hi int64) string {
	switch {
	case len(tl) == 0:
		return formatPos(hi)
	case tl[0].Type == event.StateCreate.Type:
		return formatPos(tl[0].StreamPos)
	}
	return formatPos(tl[0].StreamPos - 1)
}

// timeline loads the last events of a room in (lo, hi], oldest first, keeping
// those the user may see and the filter allows. joinPos is the stream position
// of the user's current membership event.
func (f *filler) timeline(ctx context.Context, room id.RoomID, lo, hi, joinPos int64) ([]*storage.Event, bool, error) {
	limit := f.rf.limit
	out := make([]*storage.Event, 0, min(limit, 64))
	var vis *roomserver.Visibility
	var current map[id.EventID]bool
	batch := limit + 1
	// Filters and history visibility may drop events: read further back, but
	// not without bound (a filter matching nothing would scan the whole room).
	budget := 10*batch + 100
	cur, limited := hi, false
scan:
	for budget > 0 {
		evs, err := f.p.roomEvents(ctx, room, lo, cur, batch)
		if err != nil {
			return nil, false, err
		}
		for _, ev := range evs {
			cur = ev.StreamPos - 1
			budget--
			// Events from before the user's join need the history visibility rules.
			if ev.StreamPos < joinPos {
				if vis == nil {
					if vis, err = f.p.rooms.NewVisibility(ctx, f.req.Device.UserID, room); err != nil {
						return nil, false, err
					}
				}
				if !vis.CanSee(ev) {
					// Current state is always shown, even when it was set while the
					// user could not see the room (as Synapse's always_include_ids).
					if ev.StateKey == nil {
						continue
					}
					if current == nil {
						if current, err = f.currentStateIDs(ctx, room); err != nil {
							return nil, false, err
						}
					}
					if !current[ev.EventID] {
						continue
					}
				}
			}
			if !partAllows(f.rf.timeline, ev) || ev.StateKey == nil && f.ignored[ev.Sender] {
				continue
			}
			if len(out) == limit {
				limited = true
				break scan
			}
			out = append(out, ev)
		}
		if len(evs) < batch {
			break
		}
	}
	if budget <= 0 && cur > lo {
		limited = true
	}
	slices.Reverse(out)
	if vis != nil {
		// Events from before the join: erased users' ones are served redacted.
		var err error
		if out, err = f.p.rooms.HideErased(ctx, vis, room, out); err != nil {
			return nil, false, err
		}
	}
	return out, limited, nil
}

// currentStateIDs returns the event IDs of the room's current state.
func (f *filler) currentStateIDs(ctx context.Context, room id.RoomID) (map[id.EventID]bool, error) {
	info, err := f.p.store.GetRoom(ctx, room)
	if err != nil {
		return nil, err
	}
	ids, err := f.p.store.StateIDs(ctx, info.CurrentGroup)
	if err != nil {
		return nil, err
	}
	out := make(map[id.EventID]bool, len(ids))
	for _, e := range ids {
		out[e] = true
	}
	return out, nil
}

// stateAt returns the room's state group after the last event at or before pos.
func (f *filler) stateAt(ctx context.Context, room id.RoomID, pos int64) (int64, error) {
	ev, err := f.p.store.LastEventAt(ctx, room, pos)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return ev.StateAfter, nil
}

// joined fills rooms.join[room]. full asks for the room's full state (initial
// sync, full_state, or a room joined since the last sync).
func (f *filler) joined(ctx context.Context, m storage.Membership, from, to int64, full bool) (bool, error) {
	lo := from
	if full {
		lo = 0
	}
	tl, limited, err := f.timeline(ctx, m.RoomID, lo, to, m.StreamPos)
	if err != nil {
		return false, err
	}
	if len(tl) == 0 && !full {
		return false, nil
	}
	if full && !f.req.Initial() && !f.req.FullState && len(tl) > 0 && tl[0].Type != event.StateCreate.Type {
		// A room joined since the last sync: its history before the timeline
		// was never sent (clients expect limited, as Synapse and Dendrite send).
		limited = true
	}
	state, err := f.roomState(ctx, m.RoomID, tl, from, to, full, limited)
	if err != nil {
		return false, err
	}
	tlOut, err := f.formatTimeline(ctx, m, tl)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	jr := f.resp.JoinedRoom(m.RoomID)
	f.mu.Unlock()
	jr.Timeline.Events = tlOut
	jr.Timeline.Limited = limited
	jr.Timeline.PrevBatch = prevBatch(tl, to)
	jr.State.Events = f.format(state)
	if full || hasMember(tl) {
		var known []*storage.Event
		if st := f.rf.state; full && (st == nil || st.Types == nil && len(st.NotTypes) == 0 && st.Senders == nil && len(st.NotSenders) == 0) {
			known = append(append(known, state...), tl...) // the whole state: no need to ask for the name
		}
		tf := f.rf.timeline
		membersKnown := known != nil && !f.rf.lazyMembers &&
			(tf == nil || tf.Types == nil && len(tf.NotTypes) == 0 && tf.Senders == nil && len(tf.NotSenders) == 0)
		if jr.Summary, err = f.summary(ctx, m.RoomID, known, membersKnown); err != nil {
			return false, err
		}
	}
	return true, nil
}

// withOutlierLeave appends the user's leave to a left room's timeline when
// it is an outlier, which timelines never hold: the rejection of a remote
// invite, or the withdrawal of a knock, in a room this server is not in.
func (f *filler) withOutlierLeave(ctx context.Context, m storage.Membership, tl []*storage.Event) ([]*storage.Event, error) {
	if slices.ContainsFunc(tl, func(ev *storage.Event) bool { return ev.EventID == m.EventID }) {
		return tl, nil
	}
	ev, err := f.p.store.GetEvent(ctx, m.EventID)
	if errors.Is(err, storage.ErrNotFound) {
		return tl, nil
	} else if err != nil {
		return nil, err
	}
	if !ev.Outlier || ev.Rejected || f.rf.limit == 0 || !partAllows(f.rf.timeline, ev) {
		return tl, nil
	}
	if len(tl) >= f.rf.limit {
		tl = tl[len(tl)-f.rf.limit+1:] // the leave is the newest event
	}
	return append(tl, ev), nil
}

func hasMember(evs []*storage.Event) bool {
	return slices.ContainsFunc(evs, func(ev *storage.Event) bool { return ev.Type == event.StateMember.Type })
}

// left fills rooms.leave[room] with the events up to the user's leave.
func (f *filler) left(ctx context.Context, m storage.Membership, from int64, full bool) error {
	lo := from
	if full {
		lo = 0
	}
	tl, limited, err := f.timeline(ctx, m.RoomID, lo, m.StreamPos, m.StreamPos)
	if err != nil {
		return err
	}
	if tl, err = f.withOutlierLeave(ctx, m, tl); err != nil {
		return err
	}
	if !full {
		// A room joined and left within this batch was never synced: send its full state.
		vis, err := f.p.rooms.NewVisibility(ctx, f.req.Device.UserID, m.RoomID)
		if err != nil {
			return err
		}
		full = vis.MembershipAt(from) != "join"
	}
	state, err := f.roomState(ctx, m.RoomID, tl, from, m.StreamPos, full, limited)
	if err != nil {
		return err
	}
	tlOut, err := f.formatTimeline(ctx, m, tl)
	if err != nil {
		return err
	}
	lr := f.resp.LeftRoom(m.RoomID)
	lr.Timeline.Events = tlOut
	lr.Timeline.Limited = limited
	lr.Timeline.PrevBatch = prevBatch(tl, m.StreamPos)
	lr.State.Events = f.format(state)
	return nil
}
