package clientapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/clientapi"
	"parley/internal/testserver"
)

func TestProfile(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	anon := srv.Anon()

	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": "Alice A."})
	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/avatar_url", map[string]any{"avatar_url": "mxc://hs1.test/abc"})
	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/m.tz", map[string]any{"m.tz": "Europe/Paris"})
	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/org.example.pet", map[string]any{"org.example.pet": map[string]any{"name": "Rex"}})

	res := anon.MustDo(t, http.MethodGet, "profile/@alice:hs1.test", nil)
	if res.JSON["displayname"] != "Alice A." || res.JSON["avatar_url"] != "mxc://hs1.test/abc" || res.JSON["m.tz"] != "Europe/Paris" || res.JSON["org.example.pet"] == nil {
		t.Fatalf("profile: %s", res.Body)
	}
	if res := anon.MustDo(t, http.MethodGet, "profile/@alice:hs1.test/displayname", nil); string(res.Body) != `{"displayname":"Alice A."}` {
		t.Fatalf("displayname: %s", res.Body)
	}
	alice.MustDo(t, http.MethodDelete, "profile/@alice:hs1.test/m.tz", nil)
	tests := []struct {
		name    string
		c       *testserver.Client
		method  string
		path    string
		body    any
		code    int
		errcode string
	}{
		{"unset field", anon, http.MethodGet, "profile/@alice:hs1.test/m.tz", nil, 404, "M_NOT_FOUND"},
		{"unknown user", anon, http.MethodGet, "profile/@nobody:hs1.test", nil, 404, "M_NOT_FOUND"},
		{"unknown user field", anon, http.MethodGet, "profile/@nobody:hs1.test/displayname", nil, 404, "M_NOT_FOUND"},
		{"remote user", anon, http.MethodGet, "profile/@x:elsewhere.test", nil, 404, "M_NOT_FOUND"},
		{"other user's profile", bob, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": "x"}, 403, "M_FORBIDDEN"},
		{"other user's delete", bob, http.MethodDelete, "profile/@alice:hs1.test/displayname", nil, 403, "M_FORBIDDEN"},
		{"no token", anon, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": "x"}, 401, "M_MISSING_TOKEN"},
		{"too long", alice, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": strings.Repeat("x", 257)}, 400, "M_BAD_JSON"},
		{"not a string", alice, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": 5}, 400, "M_BAD_JSON"},
		{"null", alice, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": nil}, 400, "M_BAD_JSON"},
		{"missing key", alice, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"other": "x"}, 400, "M_MISSING_PARAM"},
		{"bad avatar", alice, http.MethodPut, "profile/@alice:hs1.test/avatar_url", map[string]any{"avatar_url": "http://x/y"}, 400, "M_BAD_JSON"},
		{"bad key", alice, http.MethodPut, "profile/@alice:hs1.test/Bad", map[string]any{"Bad": 1}, 400, "M_INVALID_PARAM"},
		{"key too long", alice, http.MethodPut, "profile/@alice:hs1.test/a." + strings.Repeat("b", 260), map[string]any{}, 400, "M_KEY_TOO_LARGE"},
		{"profile too large", alice, http.MethodPut, "profile/@alice:hs1.test/org.example.big", map[string]any{"org.example.big": strings.Repeat("x", 70000)}, 400, "M_PROFILE_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.c.Do(t, tt.method, tt.path, tt.body)
			if res.Status != tt.code || res.ErrCode != tt.errcode {
				t.Fatalf("got %d %s", res.Status, res.Body)
			}
		})
	}
}

type profileRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (p *profileRecorder) ProfileChanged(_ context.Context, user id.UserID, name, avatar string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, string(user)+"|"+name+"|"+avatar)
}

func TestProfileListener(t *testing.T) {
	srv := testserver.New(t)
	rec := &profileRecorder{}
	// A second API over the same store, with the listener, served by its own router.
	api := clientapi.New(clientapi.Deps{Config: &srv.HS.Config, Store: srv.HS.Store, Log: srv.HS.Log, Profiles: rec})
	alice := srv.Register(t, "alice")
	other := testserver.Serve(t, api)
	alice.S = other
	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/displayname", map[string]any{"displayname": "Al"})
	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/avatar_url", map[string]any{"avatar_url": "mxc://hs1.test/a"})
	alice.MustDo(t, http.MethodPut, "profile/@alice:hs1.test/m.tz", map[string]any{"m.tz": "UTC"})
	want := []string{"@alice:hs1.test|Al|", "@alice:hs1.test|Al|mxc://hs1.test/a"}
	if len(rec.calls) != 2 || rec.calls[0] != want[0] || rec.calls[1] != want[1] {
		t.Fatalf("calls: %v", rec.calls)
	}
}
