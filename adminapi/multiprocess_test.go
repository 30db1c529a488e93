package adminapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

// eventually retries f for up to five seconds.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// TestModerationAcrossProcesses: two Parley processes share one PostgreSQL
// database; locks, suspensions, shadow-bans, room blocks and rate-limit
// overrides made through one are enforced by the other without a restart,
// and so is lifting them.
func TestModerationAcrossProcesses(t *testing.T) {
	if os.Getenv("PARLEY_TEST_DB") != "postgres" {
		t.Skip("SQLite serves one process; run with PARLEY_TEST_DB=postgres")
	}
	srv1 := testserver.New(t, func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Message = config.Bucket{PerSecond: 0.001, Burst: 3}
	})
	srv2 := testserver.Start(t, srv1.Cfg)
	admin := srv1.Register(t, "admin")
	makeAdmin(t, srv1, admin)
	alice := srv1.Register(t, "alice")
	bob := srv1.Register(t, "bob")
	bob2 := *bob // bob's session, talking to the second process
	bob2.S = srv2
	alice2 := *alice
	alice2.S = srv2
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob2.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	u := "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID))
	n := 0
	sendStatus := func() (int, string) {
		n++
		res := bob2.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/mp%s", room, fmt.Sprint(n)), map[string]any{"msgtype": "m.text", "body": "x"})
		ev, _ := res.JSON["event_id"].(string)
		return res.Status, ev
	}

	// Rate-limit override: unlimited on srv2 once srv1 sets it (burst is 3).
	admin.MustDo(t, http.MethodPost, u+"/override_ratelimit", map[string]any{"messages_per_second": 0, "burst_count": 0})
	eventually(t, "srv2 applies the override", func() bool {
		for i := 0; i < 4; i++ {
			if s, _ := sendStatus(); s != http.StatusOK {
				return false
			}
		}
		return true
	})
	admin.MustDo(t, http.MethodDelete, u+"/override_ratelimit", nil)
	eventually(t, "srv2 drops the override", func() bool { s, _ := sendStatus(); return s == http.StatusTooManyRequests })
	admin.MustDo(t, http.MethodPost, u+"/override_ratelimit", map[string]any{"messages_per_second": 0, "burst_count": 0})
	eventually(t, "srv2 applies the override again", func() bool { s, _ := sendStatus(); return s == http.StatusOK })

	// Shadow-ban.
	admin.MustDo(t, http.MethodPost, u+"/shadow_ban", map[string]any{})
	eventually(t, "srv2 shadow-bans bob", func() bool {
		s, ev := sendStatus()
		return s == http.StatusOK && alice2.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil).Status == http.StatusNotFound
	})
	admin.MustDo(t, http.MethodDelete, u+"/shadow_ban", nil)
	eventually(t, "srv2 lifts the shadow-ban", func() bool {
		s, ev := sendStatus()
		return s == http.StatusOK && alice2.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil).Status == http.StatusOK
	})

	// Suspension.
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/suspend/"+url.PathEscape(string(bob.UserID)), map[string]any{"suspend": true})
	eventually(t, "srv2 suspends bob", func() bool { s, _ := sendStatus(); return s == http.StatusForbidden })
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/suspend/"+url.PathEscape(string(bob.UserID)), map[string]any{"suspend": false})
	eventually(t, "srv2 lifts the suspension", func() bool { s, _ := sendStatus(); return s == http.StatusOK })

	// Lock.
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v2/users/"+url.PathEscape(string(bob.UserID)), map[string]any{"locked": true})
	eventually(t, "srv2 locks bob", func() bool {
		res := bob2.Do(t, http.MethodGet, "account/whoami", nil)
		return res.Status == http.StatusUnauthorized && res.ErrCode == "M_USER_LOCKED"
	})
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v2/users/"+url.PathEscape(string(bob.UserID)), map[string]any{"locked": false})
	eventually(t, "srv2 unlocks bob", func() bool { return bob2.Do(t, http.MethodGet, "account/whoami", nil).Status == http.StatusOK })

	// Room block.
	other := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/rooms/"+url.PathEscape(other)+"/block", map[string]any{"block": true})
	eventually(t, "srv2 blocks the room", func() bool {
		return bob2.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", other), map[string]any{}).Status == http.StatusForbidden
	})
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/rooms/"+url.PathEscape(other)+"/block", map[string]any{"block": false})
	eventually(t, "srv2 unblocks the room", func() bool {
		return bob2.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", other), map[string]any{}).Status == http.StatusOK
	})

	// Deactivation needs no cache: the token fails on srv2 at once.
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/deactivate/"+url.PathEscape(string(bob.UserID)), map[string]any{})
	if res := bob2.Do(t, http.MethodGet, "account/whoami", nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("deactivated user on srv2: %d %s", res.Status, res.Body)
	}
}
