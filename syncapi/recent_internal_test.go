package syncapi

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

type fakeMutations struct{ n uint64 }

func (f *fakeMutations) EventsMutated() uint64 { return f.n }

func positions(evs []*storage.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.StreamPos)
	}
	return out
}

// TestRecentEventsWindow: the window answers only ranges it holds whole.
func TestRecentEventsWindow(t *testing.T) {
	mut := &fakeMutations{}
	r := newRecentEvents(mut)
	r.max = 4
	ev := func(pos int64, room string) *storage.Event {
		return &storage.Event{StreamPos: pos, RoomID: id.RoomID(room), EventID: id.EventID(room + string(rune('a'+pos))), Sender: "@a:hs"}
	}
	if _, ok := r.roomEvents("!r", 0, 1, 10); ok {
		t.Fatal("an empty window answered")
	}
	r.add(ev(5, "!r"))
	r.add(ev(6, "!s"))
	r.add(ev(7, "!r"))
	if got, ok := r.roomEvents("!r", 4, 7, 10); !ok || !slices.Equal(positions(got), []int64{7, 5}) {
		t.Fatalf("(4,7] = %v %v, want [7 5]", positions(got), ok)
	}
	if got, ok := r.roomEvents("!r", 4, 7, 1); !ok || !slices.Equal(positions(got), []int64{7}) {
		t.Fatalf("limit 1 = %v %v", positions(got), ok)
	}
	if _, ok := r.roomEvents("!r", 3, 7, 10); ok {
		t.Fatal("answered a range starting before the window")
	}
	if _, ok := r.roomEvents("!r", 5, 8, 10); ok {
		t.Fatal("answered a range past the window")
	}
	// A gap (8 not published here) starts the window over.
	r.add(ev(9, "!r"))
	if _, ok := r.roomEvents("!r", 6, 9, 10); ok {
		t.Fatal("answered across a gap")
	}
	if got, ok := r.roomEvents("!r", 8, 9, 10); !ok || !slices.Equal(positions(got), []int64{9}) {
		t.Fatalf("(8,9] = %v %v", positions(got), ok)
	}
	// 8 published late is not part of the window.
	r.add(ev(8, "!r"))
	if got, _ := r.roomEvents("!r", 8, 9, 10); !slices.Equal(positions(got), []int64{9}) {
		t.Fatalf("late event entered the window: %v", positions(got))
	}
	// The count bound moves lo up.
	for p := int64(10); p <= 13; p++ {
		r.add(ev(p, "!r"))
	}
	if _, ok := r.roomEvents("!r", 8, 13, 10); ok {
		t.Fatal("answered for an event trimmed off")
	}
	if got, ok := r.roomEvents("!r", 9, 13, 10); !ok || len(got) != 4 {
		t.Fatalf("(9,13] = %v %v", positions(got), ok)
	}
	// A mutation of stored events invalidates the window at once.
	mut.n++
	if _, ok := r.roomEvents("!r", 9, 13, 10); ok {
		t.Fatal("answered after stored events changed")
	}
	r.add(ev(14, "!r"))
	if got, ok := r.roomEvents("!r", 13, 14, 10); !ok || len(got) != 1 {
		t.Fatalf("(13,14] after a mutation = %v %v", positions(got), ok)
	}
	if _, ok := r.roomEvents("!r", 12, 14, 10); ok {
		t.Fatal("kept events from before the mutation")
	}
	// An event published after the write that redacted it counted as a
	// mutation: the redaction, published next, starts the window over.
	mut.n++
	r.add(ev(15, "!r"))
	red := ev(16, "!r")
	red.Type = "m.room.redaction"
	r.add(red)
	if _, ok := r.roomEvents("!r", 14, 16, 10); ok {
		t.Fatal("kept an event published before its redaction, unredacted")
	}
	if got, ok := r.roomEvents("!r", 15, 16, 10); !ok || !slices.Equal(positions(got), []int64{16}) {
		t.Fatalf("(15,16] after a redaction = %v %v", positions(got), ok)
	}
}

// TestRecentEventsUnrelated: bundled relations are skipped only for local
// events in the window that no event in it relates to.
func TestRecentEventsUnrelated(t *testing.T) {
	r := newRecentEvents(&fakeMutations{})
	a := &storage.Event{StreamPos: 1, RoomID: "!r", EventID: "$a", Sender: "@a:hs"}
	b := &storage.Event{StreamPos: 2, RoomID: "!r", EventID: "$b", Sender: "@b:remote"}
	c := &storage.Event{StreamPos: 3, RoomID: "!r", EventID: "$c", Sender: "@a:hs"}
	r.add(a)
	r.add(b)
	r.add(c)
	if !r.unrelated([]*storage.Event{a, c}, "hs") {
		t.Fatal("local events without relations need their relations read")
	}
	if r.unrelated([]*storage.Event{b}, "hs") {
		t.Fatal("a remote event may have relations stored before it")
	}
	react := &storage.Event{StreamPos: 4, RoomID: "!r", EventID: "$d", Sender: "@a:hs",
		JSON: []byte(`{"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$c","key":"x"}}}`)}
	r.add(react)
	if r.unrelated([]*storage.Event{c}, "hs") {
		t.Fatal("an event with a reaction was taken as unrelated")
	}
	if !r.unrelated([]*storage.Event{a}, "hs") {
		t.Fatal("a reaction to another event counted for a")
	}
}
