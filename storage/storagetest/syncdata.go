package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// runSyncData covers the inbox's stores: account data, receipts, notifications and the push queue.
func runSyncData(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("AccountDataPositions", func(t *testing.T) { testAccountDataPositions(t, open(t)) })
	t.Run("ReceiptsResetCounts", func(t *testing.T) { testReceiptsResetCounts(t, open(t)) })
	t.Run("PushQueue", func(t *testing.T) { testPushQueue(t, open(t)) })
}

func testAccountDataPositions(t *testing.T, s storage.Store) {
	{
		ctx := context.Background()
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := s.PutAccountData(ctx, "@a:x", "", fmt.Sprintf("t.%d.%d", w, i), json.RawMessage(`{}`)); err != nil {
						errs <- err
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		pos, err := s.AccountDataPosition(ctx)
		if err != nil || pos != writers*each {
			t.Fatalf("position = %d, %v; want %d", pos, err, writers*each)
		}
		all, err := s.AccountDataBetween(ctx, "@a:x", 0, pos)
		if err != nil || len(all) != writers*each {
			t.Fatalf("rows = %d, %v", len(all), err)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Pos <= all[i-1].Pos {
				t.Fatalf("positions not increasing: %d then %d", all[i-1].Pos, all[i].Pos)
			}
		}
		// A failed update changes nothing, not even the position.
		boom := errors.New("boom")
		if _, err := s.UpdateAccountData(ctx, "@a:x", "!r:x", "m.tag", func(json.RawMessage) (json.RawMessage, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("update error = %v", err)
		}
		if p, _ := s.AccountDataPosition(ctx); p != pos {
			t.Fatalf("failed update moved the position to %d", p)
		}
		if _, err := s.GetAccountData(ctx, "@a:x", "!r:x", "m.tag"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("failed update stored data: %v", err)
		}
	}
}

func testReceiptsResetCounts(t *testing.T, s storage.Store) {
	{
		ctx := context.Background()
		user, room := id.UserID("@b:x"), id.RoomID("!r:x")
		var ns []storage.Notification
		for i, th := range []string{"main", "main", "$t", "$t"} {
			ns = append(ns, storage.Notification{UserID: user, RoomID: room, EventID: id.EventID(fmt.Sprintf("$e%d", i)),
				ThreadID: th, EventPos: int64(i + 1), Highlight: i == 3, Actions: json.RawMessage(`["notify"]`)})
		}
		if err := s.AddNotifications(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
		counts := func() map[string][2]int {
			cs, err := s.UnreadCounts(ctx, user, []id.RoomID{room})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string][2]int{}
			for _, c := range cs {
				out[c.ThreadID] = [2]int{c.Notifications, c.Highlights}
			}
			return out
		}
		if c := counts(); c["main"] != [2]int{2, 0} || c["$t"] != [2]int{2, 1} {
			t.Fatalf("counts %v", c)
		}
		// A threaded receipt at position 3 clears the thread up to there only.
		if _, err := s.PutReceipt(ctx, storage.Receipt{RoomID: room, Type: "m.read", UserID: user, EventID: "$e2", ThreadID: "$t"}, 3); err != nil {
			t.Fatal(err)
		}
		if c := counts(); c["main"] != [2]int{2, 0} || c["$t"] != [2]int{1, 1} {
			t.Fatalf("after thread receipt %v", c)
		}
		// An unthreaded receipt clears every thread up to its position.
		if _, err := s.PutReceipt(ctx, storage.Receipt{RoomID: room, Type: "m.read", UserID: user, EventID: "$e3"}, 4); err != nil {
			t.Fatal(err)
		}
		if c := counts(); len(c) != 0 {
			t.Fatalf("after unthreaded receipt %v", c)
		}
		// Notifications stored after the receipt (evaluation lags behind
		// persistence) are read when the receipt covers them.
		late := func(ev string, pos int64, thread string) storage.Notification {
			return storage.Notification{UserID: user, RoomID: room, EventID: id.EventID(ev), ThreadID: thread, EventPos: pos,
				Actions: json.RawMessage(`["notify"]`)}
		}
		if err := s.AddNotifications(ctx, []storage.Notification{late("$late", 4, "$t"), late("$new", 5, "main")}, nil); err != nil {
			t.Fatal(err)
		}
		if c := counts(); len(c) != 1 || c["main"] != [2]int{1, 0} {
			t.Fatalf("after late notifications %v", c)
		}
		changed, err := s.NotifChangedRooms(ctx, user, 0, 1<<62)
		if err != nil || len(changed) != 1 || changed[0] != room {
			t.Fatalf("changed rooms %v %v", changed, err)
		}
	}
}

func testPushQueue(t *testing.T, s storage.Store) {
	{
		ctx := context.Background()
		if _, err := s.NextPushJobTS(ctx); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("empty queue: %v", err)
		}
		jobs := []storage.PushJob{{UserID: "@u:x", AppID: "a", PushKey: "k", URL: "http://gw", Payload: json.RawMessage(`{}`), NextAttemptTS: 100},
			{UserID: "@u:x", AppID: "a", PushKey: "k2", URL: "http://gw", Payload: json.RawMessage(`{}`), NextAttemptTS: 200}}
		if err := s.AddNotifications(ctx, nil, jobs); err != nil {
			t.Fatal(err)
		}
		due, err := s.DuePushJobs(ctx, 150, 10)
		if err != nil || len(due) != 1 || due[0].PushKey != "k" {
			t.Fatalf("due %v %v", due, err)
		}
		if err := s.RetryPushJob(ctx, due[0].ID, 1, 300); err != nil {
			t.Fatal(err)
		}
		if next, _ := s.NextPushJobTS(ctx); next != 200 {
			t.Fatalf("next = %d", next)
		}
		due, _ = s.DuePushJobs(ctx, 1000, 10)
		if len(due) != 2 || due[0].Attempts != 1 {
			t.Fatalf("due after retry %v", due)
		}
		if err := s.DeletePushJob(ctx, due[0].ID); err != nil {
			t.Fatal(err)
		}
		// Deleting the pusher drops its queued jobs.
		if err := s.DeletePusher(ctx, "@u:x", "a", "k2"); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.DuePushJobs(ctx, 1000, 10); len(due) != 0 {
			t.Fatalf("jobs left %v", due)
		}
	}
}
