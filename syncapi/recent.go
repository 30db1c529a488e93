package syncapi

import (
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// recentEvents remembers the newest committed events of this process in
// stream order, so that the timeline of an incremental /sync woken by new
// events is read from memory instead of storage: the common case of a
// long-poll, where reading costs much of the delivery time.
//
// It holds exactly the events with positions in (lo, hi]: an event that does
// not follow hi (one committed but not published here, or published out of
// order) starts the window over at that event. A write that changes stored
// events (storage.EventMutations) empties it. It is not used when other
// processes write to the same database.
type recentEvents struct {
	mu     sync.Mutex
	evs    []recentEvent
	lo, hi int64
	// gen is the store's mutation count the events are valid for.
	gen      uint64
	mutation storage.EventMutations
	// max and maxAge bound the window.
	max    int
	maxAge time.Duration
}

type recentEvent struct {
	ev *storage.Event
	at time.Time
	// relatesTo is content.m.relates_to.event_id, if any.
	relatesTo id.EventID
}

const (
	recentMax    = 1024
	recentMaxAge = time.Minute
)

func newRecentEvents(m storage.EventMutations) *recentEvents {
	return &recentEvents{mutation: m, max: recentMax, maxAge: recentMaxAge}
}

// add records a committed event.
func (r *recentEvents) add(ev *storage.Event) {
	if ev.StreamPos <= 0 {
		return // backfilled history is not in the live stream
	}
	re := recentEvent{ev: ev, at: time.Now()}
	if rel := gjson.GetBytes(ev.JSON, `content.m\.relates_to.event_id`); rel.Type == gjson.String {
		re.relatesTo = id.EventID(rel.Str)
	}
	now := re.at
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := r.mutation.EventsMutated()
	if gen == r.gen && ev.StreamPos <= r.hi {
		return // published after a newer event: the window has moved past it
	}
	// A redaction starts the window over too: its target may have reached
	// the window, unredacted, after the redaction's write counted as a
	// mutation (events are published after their room lock is let go).
	if gen != r.gen || ev.StreamPos != r.hi+1 || ev.Type == event.EventRedaction.Type {
		clear(r.evs)
		r.evs, r.lo, r.gen = r.evs[:0], ev.StreamPos-1, gen
	}
	r.evs = append(r.evs, re)
	r.hi = ev.StreamPos
	drop := 0
	for drop < len(r.evs) && (len(r.evs)-drop > r.max || now.Sub(r.evs[drop].at) > r.maxAge) {
		drop++
	}
	if drop > 0 {
		r.lo = r.evs[drop-1].ev.StreamPos
		n := copy(r.evs, r.evs[drop:])
		clear(r.evs[n:])
		r.evs = r.evs[:n]
	}
}

// coversLocked reports whether the window holds every event in (from, to].
func (r *recentEvents) coversLocked(from, to int64) bool {
	return from >= r.lo && to <= r.hi && from < to && r.mutation.EventsMutated() == r.gen
}

// roomEvents returns, like storage.RoomStore.RoomEvents read backwards, the
// newest limit events of room in (from, to] that are part of the room's
// timeline, newest first; ok is false when the window does not cover the range.
func (r *recentEvents) roomEvents(room id.RoomID, from, to int64, limit int) (evs []*storage.Event, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.coversLocked(from, to) {
		return nil, false
	}
	// The window is contiguous: index i holds position lo+1+i.
	for i := to - r.lo - 1; i >= from-r.lo && len(evs) < limit; i-- {
		ev := r.evs[i].ev
		if ev.RoomID == room && !ev.Rejected && !ev.Outlier && !ev.SoftFailed {
			evs = append(evs, ev)
		}
	}
	return evs, true
}

// unrelated reports whether no event relates to any of evs, when the window
// can tell: each was sent from this server (so no relation to it can predate
// it) and is in the window (so every relation to it is too, once published).
func (r *recentEvents) unrelated(evs []*storage.Event, serverName string) bool {
	if len(evs) == 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mutation.EventsMutated() != r.gen {
		return false
	}
	first := evs[0].StreamPos
	ids := make(map[id.EventID]bool, len(evs))
	for _, ev := range evs {
		if ev.StreamPos <= r.lo || ev.StreamPos > r.hi || ev.Sender.Homeserver() != serverName {
			return false
		}
		first = min(first, ev.StreamPos)
		ids[ev.EventID] = true
	}
	for _, re := range r.evs[first-r.lo-1:] {
		if re.relatesTo != "" && ids[re.relatesTo] {
			return false
		}
	}
	return true
}
