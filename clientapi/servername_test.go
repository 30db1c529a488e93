package clientapi_test

import (
	"net/http"
	"testing"

	"parley/internal/config"
	"parley/internal/testserver"
)

// Server names with ports and IP literals (as SyTest's localhost:8800 and
// Complement-style 127.0.0.1:8448 use) must work in user IDs end to end.
func TestServerNameWithPort(t *testing.T) {
	for _, name := range []string{"localhost:8800", "127.0.0.1:8448", "[::1]:8448"} {
		t.Run(name, func(t *testing.T) {
			srv := testserver.New(t, func(c *config.Config) { c.ServerName = name })
			alice := srv.Register(t, "alice")
			want := "@alice:" + name
			if string(alice.UserID) != want {
				t.Fatalf("registered as %s, want %s", alice.UserID, want)
			}
			who := alice.MustDo(t, http.MethodGet, "account/whoami", nil)
			if who.JSON["user_id"] != want {
				t.Fatalf("whoami: %s", who.Body)
			}
			login := srv.Anon().Do(t, http.MethodPost, "login", map[string]any{
				"type":       "m.login.password",
				"identifier": map[string]any{"type": "m.id.user", "user": want},
				"password":   "password",
			})
			if login.Status != http.StatusOK || login.JSON["user_id"] != want {
				t.Fatalf("login with the full user ID: %d %s", login.Status, login.Body)
			}
		})
	}
}
