package retention_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

var txn int

func send(t *testing.T, c *testserver.Client, room string, content map[string]any) string {
	t.Helper()
	txn++
	return c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint(txn)), content).JSON["event_id"].(string)
}

func text(s string) map[string]any { return map[string]any{"msgtype": "m.text", "body": s} }

func messageIDs(t *testing.T, c *testserver.Client, room string) map[string]bool {
	t.Helper()
	res := c.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=100", nil)
	out := map[string]bool{}
	for _, e := range res.JSON["chunk"].([]any) {
		out[e.(map[string]any)["event_id"].(string)] = true
	}
	return out
}

func TestRetentionPurge(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Retention.Enabled = true })
	admin := srv.Register(t, "admin")
	if err := srv.HS.Store.SetAccountAdmin(context.Background(), admin.UserID, true); err != nil {
		t.Fatal(err)
	}
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	var old []string
	for i := 0; i < 3; i++ {
		old = append(old, send(t, alice, room, text(fmt.Sprintf("old findme %d", i))))
	}
	// An ephemeral message whose self-destruct time has passed.
	ephemeral := send(t, alice, room, map[string]any{"msgtype": "m.text", "body": "burn findme", "m.self_destruct_after": time.Now().Add(-time.Second).UnixMilli()})
	keep := send(t, alice, room, map[string]any{"msgtype": "m.text", "body": "later findme", "m.self_destruct_after": time.Now().Add(time.Hour).UnixMilli()})

	// Purge now: only the ephemeral message goes (no max_lifetime yet).
	res := admin.MustDo(t, http.MethodPost, "/_parley/admin/v1/retention/purge", map[string]any{})
	if res.JSON["purged"].(float64) != 1 {
		t.Fatalf("first purge: %s", res.Body)
	}
	if ids := messageIDs(t, alice, room); ids[ephemeral] || !ids[keep] || !ids[old[0]] {
		t.Fatalf("after ephemeral purge: %v", ids)
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.retention/", room), map[string]any{"max_lifetime": int64(time.Hour / time.Millisecond)})
	// Two hours later every message event but the forward extremity has expired.
	srv.HS.Retention.SetClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
	n, err := srv.HS.Retention.PurgeOnce(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("purge: %d %v", n, err)
	}
	ids := messageIDs(t, alice, room)
	for _, e := range append(old, keep) {
		if ids[e] {
			t.Fatalf("expired %s still served", e)
		}
	}
	if res := alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, old[0]), nil); res.Status != 404 {
		t.Fatalf("purged event: %d", res.Status)
	}
	res = alice.MustDo(t, http.MethodPost, "search", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "findme"}}})
	if n := len(res.JSON["search_categories"].(map[string]any)["room_events"].(map[string]any)["results"].([]any)); n != 0 {
		t.Fatalf("search still finds %d purged events", n)
	}
	// The room still works: state, join, send, sync.
	if res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil); len(res.Body) < 100 {
		t.Fatalf("state: %s", res.Body)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	fresh := send(t, bob, room, text("after the purge"))
	sync := alice.MustDo(t, http.MethodGet, "sync", nil)
	joined := sync.JSON["rooms"].(map[string]any)["join"].(map[string]any)[room].(map[string]any)
	found := false
	for _, e := range joined["timeline"].(map[string]any)["events"].([]any) {
		if e.(map[string]any)["event_id"] == fresh {
			found = true
		}
	}
	if !found {
		t.Fatalf("sync after purge lacks the new message: %s", sync.Body)
	}
	if ids := messageIDs(t, bob, room); !ids[fresh] {
		t.Fatalf("messages after purge: %v", ids)
	}
	if res := alice.Do(t, http.MethodPost, "/_parley/admin/v1/retention/purge", map[string]any{}); res.Status != 403 {
		t.Fatalf("non-admin purge: %d", res.Status)
	}
}

// TestRetentionUnderHold: expired events of a held room leave the room but stay exportable.
func TestRetentionUnderHold(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	if err := srv.HS.Store.SetAccountAdmin(context.Background(), admin.UserID, true); err != nil {
		t.Fatal(err)
	}
	alice := srv.Register(t, "alice")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "private_chat"}).JSON["room_id"].(string)
	admin.MustDo(t, http.MethodPut, "/_parley/admin/v1/holds/room/"+url.PathEscape(room), map[string]any{})
	held := send(t, alice, room, text("evidence"))
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.retention/", room), map[string]any{"max_lifetime": 60000})
	srv.HS.Retention.SetClock(func() time.Time { return time.Now().Add(time.Hour) })
	if n, err := srv.HS.Retention.PurgeOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if ids := messageIDs(t, alice, room); ids[held] {
		t.Fatal("held event still served to clients")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/_parley/admin/v1/export?room_id="+url.QueryEscape(room), nil)
	req.Header.Set("Authorization", "Bearer "+admin.AccessToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	found := false
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var rec struct {
			EventID string `json:"event_id"`
			Purged  bool   `json:"purged"`
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.EventID == held {
			found = rec.Purged && rec.Content.Body == "evidence"
		}
	}
	if !found {
		t.Fatal("purged held event missing from export")
	}
}

func TestRetentionAllowedRange(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.Retention.DefaultMaxLifetime = 30 * 24 * time.Hour
		c.Retention.AllowedMinLifetime = time.Hour
		c.Retention.AllowedMaxLifetime = 7 * 24 * time.Hour
	})
	alice := srv.Register(t, "alice")
	mk := func() string {
		return alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "private_chat"}).JSON["room_id"].(string)
	}
	set := func(room string, ms int64) {
		alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.retention/", room), map[string]any{"max_lifetime": ms})
	}
	plain, short, long := mk(), mk(), mk()
	set(short, 1000)
	set(long, int64(365*24*time.Hour/time.Millisecond))
	for room, want := range map[string]time.Duration{plain: 7 * 24 * time.Hour, short: time.Hour, long: 7 * 24 * time.Hour} {
		got, err := srv.HS.Retention.MaxLifetime(context.Background(), toRoomID(room))
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", room, got, err, want)
		}
	}
}

func TestPurgeRoomsWithoutLocalUsers(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Retention.PurgeRoomsWithoutLocalUsers = true })
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	left := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	kept := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", left), map[string]any{})
	gone := send(t, alice, left, text("bye"))
	stays := send(t, alice, kept, text("hi"))
	send(t, alice, kept, text("latest"))
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", left), map[string]any{})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", left), map[string]any{})
	if _, err := srv.HS.Retention.PurgeOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ids := messageIDs(t, alice, kept); !ids[stays] {
		t.Fatal("room with local users purged")
	}
	// alice may still read the left room up to her leave: the message is gone.
	if ids := messageIDs(t, alice, left); ids[gone] {
		t.Fatal("abandoned room not purged")
	}
	// Rejoining works.
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", left), map[string]any{})
	send(t, alice, left, text("back"))
}
