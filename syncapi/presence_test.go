package syncapi_test

import (
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/testserver"
)

func presenceOf(s *syncResp, user id.UserID) map[string]any {
	var last map[string]any
	for _, e := range findType(s.Presence.Events, "m.presence") {
		if e.Sender == string(user) {
			last = e.content()
		}
	}
	return last
}

func TestPresence(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	newRoom(t, alice, bob)
	status := testserver.Sprintf("presence/%s/status", alice.UserID)

	wantErr(t, bob.Do(t, http.MethodPut, status, map[string]any{"presence": "online"}), 403, "M_FORBIDDEN")
	wantErr(t, alice.Do(t, http.MethodPut, status, map[string]any{"presence": "busy"}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPut, status, map[string]any{"status_msg": "x"}), 400, "M_BAD_JSON")

	b0 := inboxSync(t, bob, map[string]string{"set_presence": "offline"})
	c0 := inboxSync(t, carol, map[string]string{"set_presence": "offline"})
	alice.MustDo(t, http.MethodPut, status, map[string]any{"presence": "unavailable", "status_msg": "lunch"})
	res := bob.MustDo(t, http.MethodGet, status, nil)
	if res.JSON["presence"] != "unavailable" || res.JSON["status_msg"] != "lunch" {
		t.Fatalf("GET presence: %s", res.Body)
	}
	b1 := inboxSync(t, bob, map[string]string{"since": b0.NextBatch, "timeout": "5000", "set_presence": "offline"})
	if p := presenceOf(b1, alice.UserID); p == nil || p["presence"] != "unavailable" || p["status_msg"] != "lunch" {
		t.Fatalf("bob does not see alice's presence: %s", b1.raw)
	}
	c1 := inboxSync(t, carol, map[string]string{"since": c0.NextBatch, "set_presence": "offline"})
	if presenceOf(c1, alice.UserID) != nil {
		t.Fatalf("carol shares no room with alice but sees her presence: %s", c1.raw)
	}
	// The user sees their own presence.
	if p := presenceOf(inboxSync(t, alice, map[string]string{"set_presence": "offline"}), alice.UserID); p == nil || p["presence"] != "unavailable" {
		t.Fatal("alice does not see her own presence")
	}
	// Presence is visible to users sharing a room only.
	wantErr(t, carol.Do(t, http.MethodGet, status, nil), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("presence/%s/status", "@nobody:hs1.test"), nil), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("presence/%s/status", "notauser"), nil), 400, "M_INVALID_PARAM")
	// A user who never set presence is offline.
	if res := carol.MustDo(t, http.MethodGet, testserver.Sprintf("presence/%s/status", carol.UserID), nil); res.JSON["presence"] != "offline" {
		t.Fatalf("carol's own presence: %s", res.Body)
	}

}

func TestPresenceTimeouts(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.Sync.PresenceOfflineTimeout = 300 * time.Millisecond
		c.Sync.PresenceIdleTimeout = 200 * time.Millisecond
	})
	alice := srv.Register(t, "alice")
	status := testserver.Sprintf("presence/%s/status", alice.UserID)
	get := func() any { return alice.MustDo(t, http.MethodGet, status, nil).JSON["presence"] }

	inboxSync(t, alice, nil) // set_presence defaults to online
	if p := get(); p != "online" {
		t.Fatalf("after sync: %v", p)
	}
	// While a long-poll is running the user does not go offline, but idles to unavailable.
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := inboxSync(t, alice, nil)
		inboxSync(t, alice, map[string]string{"since": s.NextBatch, "timeout": "1500", "filter": `{"presence":{"not_types":["*"]}}`})
	}()
	time.Sleep(800 * time.Millisecond)
	if p := get(); p != "unavailable" {
		t.Fatalf("idle user during long-poll: %v", p)
	}
	<-done
	waitFor(t, 3*time.Second, func() bool { return get() == "offline" })
	// set_presence=unavailable sets unavailable; offline leaves it alone.
	inboxSync(t, alice, map[string]string{"set_presence": "unavailable"})
	if p := get(); p != "unavailable" {
		t.Fatalf("set_presence=unavailable: %v", p)
	}
}

func TestPresenceDisabled(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Sync.Presence = false })
	alice := srv.Register(t, "alice")
	status := testserver.Sprintf("presence/%s/status", alice.UserID)
	alice.MustDo(t, http.MethodPut, status, map[string]any{"presence": "unavailable", "status_msg": "away"})
	if res := alice.MustDo(t, http.MethodGet, status, nil); res.JSON["presence"] != "unavailable" || res.JSON["status_msg"] != "away" {
		t.Fatalf("GET: %s", res.Body)
	}
	if s := inboxSync(t, alice, nil); len(s.Presence.Events) != 0 {
		t.Fatalf("sync carries presence while disabled: %s", s.raw)
	}
	// Syncing does not change presence either.
	if res := alice.MustDo(t, http.MethodGet, status, nil); res.JSON["presence"] != "unavailable" {
		t.Fatalf("sync changed presence: %s", res.Body)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPresenceOnJoin checks that joining a room brings its members' presence
// into the next incremental sync, and a new member's presence reaches the
// room's members, although neither changed since their tokens.
func TestPresenceOnJoin(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("presence/%s/status", alice.UserID), map[string]any{"presence": "online", "status_msg": "here"})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("presence/%s/status", bob.UserID), map[string]any{"presence": "unavailable"})
	room := newRoom(t, alice)
	a0 := inboxSync(t, alice, map[string]string{"set_presence": "offline"})
	b0 := inboxSync(t, bob, map[string]string{"set_presence": "offline"})
	if presenceOf(b0, alice.UserID) != nil {
		t.Fatalf("bob sees alice before sharing a room: %s", b0.raw)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	b1 := inboxSync(t, bob, map[string]string{"since": b0.NextBatch, "set_presence": "offline"})
	if p := presenceOf(b1, alice.UserID); p == nil || p["status_msg"] != "here" {
		t.Fatalf("bob's sync after joining lacks alice's presence: %s", b1.raw)
	}
	a1 := inboxSync(t, alice, map[string]string{"since": a0.NextBatch, "set_presence": "offline"})
	if p := presenceOf(a1, bob.UserID); p == nil || p["presence"] != "unavailable" {
		t.Fatalf("alice's sync lacks the new member's presence: %s", a1.raw)
	}
	// Not again in the next sync.
	if p := presenceOf(inboxSync(t, bob, map[string]string{"since": b1.NextBatch, "set_presence": "offline"}), alice.UserID); p != nil {
		t.Fatal("alice's presence repeated")
	}
}
