package stateres

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// benchFork builds a room where 200 users joined, then forks into two
// branches of 150 state events each (notes, kicks, leaves, power level and
// topic changes): about 500 state events, 300 of them conflicted.
func benchFork(b *testing.B, v id.RoomVersion) (*fixture, []StateMap) {
	b.Helper()
	f := newFixture(b, v)
	users := make([]id.UserID, 200)
	for i := range users {
		users[i] = id.UserID(fmt.Sprintf("@u%03d:s%d.test", i, i%7))
		f.Member("", users[i], users[i], event.MembershipJoin)
	}
	base := f.Last
	a := base
	for i := range 120 {
		a = f.State(a, alice, noteType, fmt.Sprintf("k%03d", i), map[string]any{"branch": "a"})
	}
	for i := range 29 {
		a = f.Member(a, bob, users[i], event.MembershipLeave)
	}
	a = f.State(a, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 50, charlie: 50}))
	bb := base
	for i := range 120 {
		bb = f.State(bb, users[i], noteType, fmt.Sprintf("k%03d", i), map[string]any{"branch": "b"})
	}
	for i := 100; i < 128; i++ {
		bb = f.Member(bb, users[i], users[i], event.MembershipLeave)
	}
	bb = f.State(bb, bob, event.StateTopic.Type, "", map[string]any{"topic": "b"})
	bb = f.State(bb, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 0}))
	return f, []StateMap{f.After(a), f.After(bb)}
}

func BenchmarkResolveFork(b *testing.B) {
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		b.Run("v"+string(v), func(b *testing.B) {
			f, sets := benchFork(b, v)
			_, conflicted := partition(sets)
			distinct := map[id.EventID]bool{}
			for _, s := range sets {
				for _, e := range s {
					distinct[e] = true
				}
			}
			for b.Loop() {
				if _, err := Resolve(context.Background(), v, sets, f.Fetch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(conflicted)), "conflicted")
			b.ReportMetric(float64(len(distinct)), "state_events")
		})
	}
}
