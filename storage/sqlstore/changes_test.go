package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"parley/storage"
	"parley/storage/sqlstore"
)

func TestChangeFeed(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if s.DB().Dialect == sqlstore.SQLite {
			// One process: nothing to listen to, and the call does not block.
			if err := s.ListenChanges(ctx, func(string) { t.Error("SQLite reported a change") }); err != nil {
				t.Fatal(err)
			}
			return
		}
		topics := make(chan string, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.ListenChanges(ctx, func(topic string) { topics <- topic })
		}()
		next := func() string {
			t.Helper()
			select {
			case topic := <-topics:
				return topic
			case <-time.After(5 * time.Second):
				t.Fatal("no change reported")
				return ""
			}
		}
		if got := next(); got != "" {
			t.Fatalf("first report %q, want \"\" (reload everything)", got)
		}
		writes := []func() error{
			func() error { return s.SetRestrictions(ctx, "@u:hs", storage.Restrictions{Locked: true}) },
			func() error { return s.SetRoomBlocked(ctx, "!r:hs", true, "@admin:hs") },
			func() error {
				return s.SetRateLimitOverride(ctx, "@u:hs", &storage.RateLimitOverride{MessagesPerSecond: 1, BurstCount: 2})
			},
			func() error { return s.SetRateLimitOverride(ctx, "@u:hs", nil) },
		}
		for i, w := range writes {
			if err := w(); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != storage.TopicModeration {
				t.Fatalf("write %d reported %q", i, got)
			}
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ListenChanges did not return when its context ended")
		}
	})
}
