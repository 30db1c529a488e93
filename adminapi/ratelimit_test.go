package adminapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"parley/internal/config"
	"parley/internal/testserver"
)

func TestRateLimitOverride(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Message = config.Bucket{PerSecond: 0.001, Burst: 2}
	})
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	bob := srv.Register(t, "bob")
	room := createRoom(t, bob, map[string]any{"preset": "private_chat"})
	try := func(i int) int {
		return bob.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint("rl", i)),
			map[string]any{"msgtype": "m.text", "body": "x"}).Status
	}
	if try(1) != 200 || try(2) != 200 || try(3) != 429 {
		t.Fatal("default limit not applied")
	}
	path := "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/override_ratelimit"
	if res := bob.Do(t, http.MethodPost, path, map[string]any{}); res.Status != 403 {
		t.Fatalf("non-admin override: %d", res.Status)
	}
	if res := admin.MustDo(t, http.MethodGet, path, nil); len(res.JSON) != 0 {
		t.Fatalf("no override yet: %s", res.Body)
	}
	admin.MustDo(t, http.MethodPost, path, map[string]any{"messages_per_second": 0, "burst_count": 0})
	for i := 4; i < 10; i++ {
		if s := try(i); s != 200 {
			t.Fatalf("send %d with override: %d", i, s)
		}
	}
	if res := admin.MustDo(t, http.MethodGet, path, nil); res.JSON["burst_count"].(float64) != 0 {
		t.Fatalf("get override: %s", res.Body)
	}
	if res := admin.Do(t, http.MethodPost, path, map[string]any{"burst_count": -1}); res.Status != 400 {
		t.Fatalf("negative override: %d", res.Status)
	}
	admin.MustDo(t, http.MethodDelete, path, nil)
	if try(20) != 429 {
		t.Fatal("override not removed")
	}
}
