package clientapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

// newBridge starts a server with one application service, "bridge", owning
// the users @bridge_*, the aliases #bridge_* (both exclusive) and sharing
// @shared_* with others.
func newBridge(t *testing.T, opts ...testserver.Option) (*testserver.Server, *testserver.AppService) {
	t.Helper()
	as := testserver.NewAppService(t, "bridge",
		`[{exclusive: true, regex: '@bridge_.*:hs1\.test'}, {exclusive: false, regex: '@shared_.*'}]`,
		`[{exclusive: true, regex: '#bridge_.*'}]`, `[]`, "protocols: [gitter]", "rate_limited: false")
	srv := testserver.New(t, append([]testserver.Option{testserver.AppServices(as)}, opts...)...)
	return srv, as
}

func TestAppServiceRegister(t *testing.T) {
	srv, as := newBridge(t, func(c *config.Config) { c.Registration.Enabled = false })
	bot := as.Client(srv)

	// The service's own user exists from the start.
	if res := bot.MustDo(t, http.MethodGet, "account/whoami", nil); res.JSON["user_id"] != "@bridgebot:hs1.test" || res.JSON["device_id"] != nil {
		t.Fatalf("whoami of the sender: %s", res.Body)
	}
	tests := []struct {
		name     string
		c        *testserver.Client
		body     any
		wantCode int
		wantErr  string
	}{
		{"in the exclusive namespace", bot, map[string]any{"type": "m.login.application_service", "username": "bridge_alice"}, 200, ""},
		{"in a shared namespace", bot, map[string]any{"type": "m.login.application_service", "username": "shared_1"}, 200, ""},
		{"with an underscore", bot, map[string]any{"type": "m.login.application_service", "username": "bridge__x"}, 200, ""},
		{"auth dict form", bot, map[string]any{"auth": map[string]any{"type": "m.login.application_service"}, "username": "bridge_dict"}, 200, ""},
		{"outside its namespace", bot, map[string]any{"type": "m.login.application_service", "username": "alice"}, 400, "M_EXCLUSIVE"},
		{"taken", bot, map[string]any{"type": "m.login.application_service", "username": "bridge_alice"}, 400, "M_USER_IN_USE"},
		{"invalid", bot, map[string]any{"type": "m.login.application_service", "username": "Bridge Bob"}, 400, "M_INVALID_USERNAME"},
		{"no username", bot, map[string]any{"type": "m.login.application_service"}, 400, "M_MISSING_PARAM"},
		{"no token", srv.Anon(), map[string]any{"type": "m.login.application_service", "username": "bridge_x"}, 401, "M_MISSING_TOKEN"},
		{"not an as_token", &testserver.Client{S: srv, AccessToken: as.HSToken}, map[string]any{"type": "m.login.application_service", "username": "bridge_x"}, 401, "M_UNKNOWN_TOKEN"},
		{"bad JSON", bot, "{", 400, "M_NOT_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.c.Do(t, http.MethodPost, "register", tt.body)
			if res.Status != tt.wantCode || res.ErrCode != tt.wantErr {
				t.Fatalf("got %d %q, want %d %q: %s", res.Status, res.ErrCode, tt.wantCode, tt.wantErr, res.Body)
			}
			if tt.wantCode == 200 && (res.JSON["access_token"] == nil || res.JSON["device_id"] == nil) {
				t.Fatalf("registration without inhibit_login must log in: %s", res.Body)
			}
		})
	}

	res := bot.MustDo(t, http.MethodPost, "register", map[string]any{"type": "m.login.application_service", "username": "bridge_quiet", "inhibit_login": true})
	if res.JSON["user_id"] != "@bridge_quiet:hs1.test" || res.JSON["access_token"] != nil || res.JSON["device_id"] != nil {
		t.Fatalf("inhibit_login: %s", res.Body)
	}
	// The token of a user the service registered works.
	ghost := &testserver.Client{S: srv, AccessToken: tokenOf(t, bot, "bridge_tok")}
	if res := ghost.MustDo(t, http.MethodGet, "account/whoami", nil); res.JSON["user_id"] != "@bridge_tok:hs1.test" {
		t.Fatalf("ghost whoami: %s", res.Body)
	}
}

// tokenOf registers localpart through the application service and returns its access token.
func tokenOf(t *testing.T, bot *testserver.Client, localpart string) string {
	t.Helper()
	res := bot.MustDo(t, http.MethodPost, "register", map[string]any{"type": "m.login.application_service", "username": localpart})
	return res.JSON["access_token"].(string)
}

func TestAppServiceExclusiveNamespaces(t *testing.T) {
	srv, as := newBridge(t)
	alice := srv.Register(t, "alice")
	bot := as.Client(srv)
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)

	// Ordinary users cannot register inside an exclusive namespace, nor as the sender...
	for _, name := range []string{"bridge_mallory", "bridgebot"} {
		res := srv.Anon().Do(t, http.MethodPost, "register", map[string]any{"username": name, "password": "password", "auth": map[string]any{"type": "m.login.dummy"}})
		if res.Status != 400 || res.ErrCode != "M_EXCLUSIVE" {
			t.Fatalf("register %s: %d %s", name, res.Status, res.Body)
		}
		if res := srv.Anon().Do(t, http.MethodGet, "register/available?username="+name, nil); res.ErrCode != "M_EXCLUSIVE" {
			t.Fatalf("available %s: %s", name, res.Body)
		}
	}
	// ...but may inside a shared one.
	srv.Register(t, "shared_bob")

	// Aliases: only the service may create those of its exclusive namespace.
	path := "directory/room/" + testserver.PathEscape("#bridge_room:hs1.test")
	if res := alice.Do(t, http.MethodPut, path, map[string]any{"room_id": room}); res.Status != 400 || res.ErrCode != "M_EXCLUSIVE" {
		t.Fatalf("user alias in exclusive namespace: %d %s", res.Status, res.Body)
	}
	if res := alice.Do(t, http.MethodPost, "createRoom", map[string]any{"room_alias_name": "bridge_new"}); res.ErrCode != "M_EXCLUSIVE" {
		t.Fatalf("createRoom alias in exclusive namespace: %d %s", res.Status, res.Body)
	}
	bot.MustDo(t, http.MethodPut, path, map[string]any{"room_id": room})
	if res := alice.MustDo(t, http.MethodGet, path, nil); res.JSON["room_id"] != room {
		t.Fatalf("alias lookup: %s", res.Body)
	}
	alice.MustDo(t, http.MethodPut, "directory/room/"+testserver.PathEscape("#other:hs1.test"), map[string]any{"room_id": room})
}

func TestAppServiceMasquerade(t *testing.T) {
	srv, as := newBridge(t)
	alice := srv.Register(t, "alice")
	bot := as.Client(srv)
	tokenOf(t, bot, "bridge_ghost")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)

	q := func(path, user string) string { return path + "?user_id=" + testserver.PathEscape(user) }
	ghost := &testserver.Client{S: srv, AccessToken: as.ASToken}

	res := ghost.MustDo(t, http.MethodGet, q("account/whoami", "@bridge_ghost:hs1.test"), nil)
	if res.JSON["user_id"] != "@bridge_ghost:hs1.test" || res.JSON["device_id"] != nil {
		t.Fatalf("whoami as ghost: %s", res.Body)
	}
	ghost.MustDo(t, http.MethodPost, q("join/"+testserver.PathEscape(room), "@bridge_ghost:hs1.test"), map[string]any{})
	ghost.MustDo(t, http.MethodPut, q("profile/@bridge_ghost:hs1.test/displayname", "@bridge_ghost:hs1.test"), map[string]any{"displayname": "Ghost"})
	ev := ghost.MustDo(t, http.MethodPut, q(testserver.Sprintf("rooms/%s/send/m.room.message/t1", room), "@bridge_ghost:hs1.test"),
		map[string]any{"msgtype": "m.text", "body": "hi"}).JSON["event_id"].(string)
	got := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil)
	if got.JSON["sender"] != "@bridge_ghost:hs1.test" {
		t.Fatalf("event sender: %s", got.Body)
	}
	// The same transaction ID again is the same event.
	again := ghost.MustDo(t, http.MethodPut, q(testserver.Sprintf("rooms/%s/send/m.room.message/t1", room), "@bridge_ghost:hs1.test"),
		map[string]any{"msgtype": "m.text", "body": "hi"}).JSON["event_id"]
	if again != ev {
		t.Fatalf("retried send made %v, want %s", again, ev)
	}

	for _, c := range []struct {
		name, user string
		status     int
		errcode    string
	}{
		{"outside the namespace", "@alice:hs1.test", 403, "M_FORBIDDEN"},
		{"in the namespace but not registered", "@bridge_nobody:hs1.test", 403, "M_FORBIDDEN"},
		{"another server's user", "@bridge_x:other.test", 403, "M_FORBIDDEN"},
		{"the sender", "@bridgebot:hs1.test", 200, ""},
	} {
		res := bot.Do(t, http.MethodGet, q("account/whoami", c.user), nil)
		if res.Status != c.status || res.ErrCode != c.errcode {
			t.Errorf("%s: got %d %s", c.name, res.Status, res.Body)
		}
	}
	// A ghost the service may act as still may not set another user's profile.
	if res := bot.Do(t, http.MethodPut, q("profile/@alice:hs1.test/displayname", "@bridge_ghost:hs1.test"), map[string]any{"displayname": "x"}); res.Status != 403 {
		t.Fatalf("profile of a stranger: %d %s", res.Status, res.Body)
	}
	// An asserted device must exist.
	if res := bot.Do(t, http.MethodGet, q("account/whoami", "@bridge_ghost:hs1.test")+"&device_id=NOPE", nil); res.Status != 400 || res.ErrCode != "M_UNKNOWN_DEVICE" {
		t.Fatalf("unknown device: %d %s", res.Status, res.Body)
	}
	// A wrong token is an unknown token, whatever user_id says.
	bad := &testserver.Client{S: srv, AccessToken: "nope"}
	if res := bad.Do(t, http.MethodGet, q("account/whoami", "@bridge_ghost:hs1.test"), nil); res.Status != 401 || res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("bad token: %d %s", res.Status, res.Body)
	}
	// The access_token query parameter works too.
	anon := srv.Anon()
	if res := anon.MustDo(t, http.MethodGet, "account/whoami?access_token="+testserver.PathEscape(as.ASToken), nil); res.JSON["user_id"] != "@bridgebot:hs1.test" {
		t.Fatalf("query token: %s", res.Body)
	}
	// Without a device there are no device keys to upload.
	if res := ghost.Do(t, http.MethodPost, q("keys/upload", "@bridge_ghost:hs1.test"), map[string]any{}); res.Status != 400 {
		t.Fatalf("keys upload without a device: %d %s", res.Status, res.Body)
	}
	// A ghost can sync without a device of its own.
	if res := ghost.MustDo(t, http.MethodGet, q("sync", "@bridge_ghost:hs1.test")+"&timeout=0", nil); !strings.Contains(string(res.Body), room) {
		t.Fatalf("sync as ghost: %s", res.Body)
	}
	// Deactivation of a ghost needs no password.
	bot.MustDo(t, http.MethodPost, q("account/deactivate", "@bridge_ghost:hs1.test"), map[string]any{})
}

func TestAppServiceLogin(t *testing.T) {
	srv, as := newBridge(t)
	bot := as.Client(srv)
	tokenOf(t, bot, "bridge_login")
	flows := srv.Anon().MustDo(t, http.MethodGet, "login", nil)
	if !strings.Contains(string(flows.Body), `"m.login.application_service"`) {
		t.Fatalf("login flows: %s", flows.Body)
	}
	login := func(c *testserver.Client, user string) *testserver.Response {
		return c.Do(t, http.MethodPost, "login", map[string]any{"type": "m.login.application_service",
			"identifier": map[string]any{"type": "m.id.user", "user": user}})
	}
	res := login(bot, "bridge_login")
	if res.Status != 200 || res.JSON["user_id"] != "@bridge_login:hs1.test" || res.JSON["access_token"] == nil {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}
	srv.Register(t, "alice")
	if res := login(bot, "alice"); res.Status != 403 {
		t.Fatalf("login outside the namespace: %d %s", res.Status, res.Body)
	}
	if res := login(srv.Anon(), "bridge_login"); res.Status != 401 || res.ErrCode != "M_MISSING_TOKEN" {
		t.Fatalf("login without token: %d %s", res.Status, res.Body)
	}
	// Without application services the flow is not offered.
	plain := testserver.New(t)
	if f := plain.Anon().MustDo(t, http.MethodGet, "login", nil); strings.Contains(string(f.Body), "application_service") {
		t.Fatalf("flows without application services: %s", f.Body)
	}
}

func TestAppServiceRateLimits(t *testing.T) {
	limited := func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Message = config.Bucket{PerSecond: 0.001, Burst: 2}
	}
	srv, as := newBridge(t, limited)
	bot := as.Client(srv)
	tokenOf(t, bot, "bridge_fast")
	room := bot.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	bot.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), map[string]any{"user_id": "@bridge_fast:hs1.test"})
	path := testserver.Sprintf("rooms/%s/join", room) + "?user_id=" + testserver.PathEscape("@bridge_fast:hs1.test")
	bot.MustDo(t, http.MethodPost, path, map[string]any{})
	for i := range 5 {
		// rate_limited: false exempts the service's users (and its sender).
		p := testserver.Sprintf("rooms/%s/send/m.room.message/r%s", room, i) + "?user_id=" + testserver.PathEscape("@bridge_fast:hs1.test")
		bot.MustDo(t, http.MethodPut, p, map[string]any{"msgtype": "m.text", "body": "x"})
		bot.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/s%s", room, i), map[string]any{"msgtype": "m.text", "body": "x"})
	}
	// Ordinary users are still limited.
	alice := srv.Register(t, "alice")
	ar := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	var last int
	for i := range 4 {
		last = alice.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/a%s", ar, i), map[string]any{"msgtype": "m.text", "body": "x"}).Status
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("ordinary user not limited: %d", last)
	}
}

func TestAppServiceTimestampMassaging(t *testing.T) {
	srv, as := newBridge(t)
	bot := as.Client(srv)
	alice := srv.Register(t, "alice")
	room := bot.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	const ts = 1234567890123
	ev := bot.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/ts1", room)+"?ts=1234567890123",
		map[string]any{"msgtype": "m.text", "body": "old"}).JSON["event_id"].(string)
	st := bot.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic/", room)+"?ts=1234567890123",
		map[string]any{"topic": "old topic"}).JSON["event_id"].(string)
	tokenOf(t, bot, "bridge_ts")
	member := bot.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, "@bridge_ts:hs1.test")+
		"?ts=1234567890123&user_id="+testserver.PathEscape("@bridge_ts:hs1.test"), map[string]any{"membership": "join"}).JSON["event_id"].(string)
	for _, e := range []string{ev, st, member} {
		got := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, e), nil)
		if got.JSON["origin_server_ts"] != float64(ts) {
			t.Fatalf("origin_server_ts of %s: %v", e, got.JSON["origin_server_ts"])
		}
	}
	// Ordinary users' ts is ignored.
	before := time.Now().UnixMilli()
	e := alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/ts2", room)+"?ts=1234567890123",
		map[string]any{"msgtype": "m.text", "body": "now"}).JSON["event_id"].(string)
	got := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, e), nil)
	if ts, _ := got.JSON["origin_server_ts"].(float64); int64(ts) < before {
		t.Fatalf("a user's ts was applied: %v", got.JSON["origin_server_ts"])
	}
	if res := bot.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/ts3", room)+"?ts=yesterday",
		map[string]any{"msgtype": "m.text", "body": "x"}); res.Status != 400 || res.ErrCode != "M_INVALID_PARAM" {
		t.Fatalf("bad ts: %d %s", res.Status, res.Body)
	}
}

func TestAppServicePing(t *testing.T) {
	srv, as := newBridge(t)
	bot := as.Client(srv)
	as.Handle(func(w http.ResponseWriter, r testserver.ASRequest) bool {
		if r.Path != "/_matrix/app/v1/ping" {
			return false
		}
		var body map[string]string
		_ = json.Unmarshal(r.Body, &body)
		switch body["transaction_id"] {
		case "fail":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"errcode":"M_FORBIDDEN"}`))
			return true
		case "slow":
			time.Sleep(2 * time.Second)
		}
		return false
	})
	res := bot.MustDo(t, http.MethodPost, "/_matrix/client/v1/appservice/bridge/ping", map[string]any{"transaction_id": "t1"})
	if _, ok := res.JSON["duration_ms"].(float64); !ok {
		t.Fatalf("ping: %s", res.Body)
	}
	pings := as.Requests("/_matrix/app/v1/ping")
	if len(pings) != 1 || pings[0].Authorization != "Bearer "+as.HSToken || !strings.Contains(string(pings[0].Body), `"t1"`) {
		t.Fatalf("ping request: %+v", pings)
	}
	res = bot.Do(t, http.MethodPost, "/_matrix/client/v1/appservice/bridge/ping", map[string]any{"transaction_id": "fail"})
	if res.Status != 502 || res.ErrCode != "M_BAD_STATUS" || res.JSON["status"] != float64(403) || !strings.Contains(res.JSON["body"].(string), "M_FORBIDDEN") {
		t.Fatalf("failing ping: %d %s", res.Status, res.Body)
	}
	if res := bot.Do(t, http.MethodPost, "/_matrix/client/v1/appservice/other/ping", map[string]any{}); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("ping of another service: %d %s", res.Status, res.Body)
	}
	alice := srv.Register(t, "alice")
	if res := alice.Do(t, http.MethodPost, "/_matrix/client/v1/appservice/bridge/ping", map[string]any{}); res.Status != 403 {
		t.Fatalf("ping by a user: %d %s", res.Status, res.Body)
	}
	srv.HS.AppServiceClient.SetQueryTimeout(time.Second)
	if res := bot.Do(t, http.MethodPost, "/_matrix/client/v1/appservice/bridge/ping", map[string]any{"transaction_id": "slow"}); res.Status != 504 || res.ErrCode != "M_CONNECTION_TIMEOUT" {
		t.Fatalf("slow ping: %d %s", res.Status, res.Body)
	}
}

func TestAppServicePingErrors(t *testing.T) {
	dead := testserver.NewAppService(t, "dead", `[]`, `[]`, `[]`)
	quiet := testserver.NewAppService(t, "quiet", `[]`, `[]`, `[]`)
	reg, err := os.ReadFile(quiet.Registration)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(quiet.Registration, []byte(strings.Replace(string(reg), "url: "+quiet.URL, "url: null", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.New(t, testserver.AppServices(dead, quiet))
	dead.Close()
	if res := dead.Client(srv).Do(t, http.MethodPost, "/_matrix/client/v1/appservice/dead/ping", map[string]any{}); res.Status != 502 || res.ErrCode != "M_CONNECTION_FAILED" {
		t.Fatalf("unreachable service: %d %s", res.Status, res.Body)
	}
	if res := quiet.Client(srv).Do(t, http.MethodPost, "/_matrix/client/v1/appservice/quiet/ping", map[string]any{}); res.Status != 400 || res.ErrCode != "M_URL_NOT_SET" {
		t.Fatalf("no url: %d %s", res.Status, res.Body)
	}
}

func TestAppServiceQueriesUsersAndAliases(t *testing.T) {
	srv, as := newBridge(t)
	alice := srv.Register(t, "alice")
	bot := as.Client(srv)
	room := bot.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	as.Handle(func(w http.ResponseWriter, r testserver.ASRequest) bool {
		switch r.Path {
		case "/_matrix/app/v1/users/@bridge_known:hs1.test":
			return false // 200: it exists
		case "/_matrix/app/v1/rooms/#bridge_lazy:hs1.test":
			// The service creates the alias, then answers.
			bot.MustDo(t, http.MethodPut, "directory/room/"+testserver.PathEscape("#bridge_lazy:hs1.test"), map[string]any{"room_id": room})
			return false
		}
		if strings.HasPrefix(r.Path, "/_matrix/app/v1/users/") || strings.HasPrefix(r.Path, "/_matrix/app/v1/rooms/") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND"}`))
			return true
		}
		return false
	})

	// A profile lookup of an unknown user of the namespace asks the service, which knows it.
	res := alice.MustDo(t, http.MethodGet, "profile/@bridge_known:hs1.test", nil)
	if res.JSON["displayname"] != "bridge_known" {
		t.Fatalf("profile of a queried user: %s", res.Body)
	}
	if q := as.Requests("/_matrix/app/v1/users/"); len(q) != 1 || q[0].Authorization != "Bearer "+as.HSToken {
		t.Fatalf("user queries: %+v", q)
	}
	// Once created it is not asked again.
	alice.MustDo(t, http.MethodGet, "profile/@bridge_known:hs1.test", nil)
	if q := as.Requests("/_matrix/app/v1/users/"); len(q) != 1 {
		t.Fatalf("asked again: %d", len(q))
	}
	// Unknown to the service: 404, and not created.
	if res := alice.Do(t, http.MethodGet, "profile/@bridge_ghost:hs1.test", nil); res.Status != 404 {
		t.Fatalf("profile of an unknown user: %d %s", res.Status, res.Body)
	}
	// Users outside every namespace are never asked about.
	alice.Do(t, http.MethodGet, "profile/@nobody:hs1.test", nil)
	if q := as.Requests("/_matrix/app/v1/users/"); len(q) != 2 {
		t.Fatalf("queries: %d", len(q))
	}
	// Inviting an unknown user of the namespace asks the service first.
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	alice.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), map[string]any{"user_id": "@bridge_invitee:hs1.test"})
	if q := as.Requests("/_matrix/app/v1/users/@bridge_invitee:hs1.test"); len(q) != 1 {
		t.Fatalf("invite did not ask the service: %d", len(q))
	}

	// An unknown alias of the namespace: the service is asked, creates it, and the lookup succeeds.
	res = alice.MustDo(t, http.MethodGet, "directory/room/"+testserver.PathEscape("#bridge_lazy:hs1.test"), nil)
	if res.JSON["room_id"] != room {
		t.Fatalf("alias created by the service: %s", res.Body)
	}
	if res := alice.Do(t, http.MethodGet, "directory/room/"+testserver.PathEscape("#bridge_none:hs1.test"), nil); res.Status != 404 {
		t.Fatalf("alias the service does not know: %d %s", res.Status, res.Body)
	}
	// Joining by an unknown alias asks too.
	bot.MustDo(t, http.MethodDelete, "directory/room/"+testserver.PathEscape("#bridge_lazy:hs1.test"), nil)
	res = alice.MustDo(t, http.MethodPost, "join/"+testserver.PathEscape("#bridge_lazy:hs1.test"), map[string]any{})
	if res.JSON["room_id"] != room {
		t.Fatalf("join by a queried alias: %s", res.Body)
	}
	if q := as.Requests("/_matrix/app/v1/rooms/#bridge_lazy"); len(q) != 2 {
		t.Fatalf("alias queries: %d", len(q))
	}
}

func TestAppServiceThirdPartyLookups(t *testing.T) {
	srv, as := newBridge(t)
	alice := srv.Register(t, "alice")
	as.Handle(func(w http.ResponseWriter, r testserver.ASRequest) bool {
		switch r.Path {
		case "/_matrix/app/v1/thirdparty/protocol/gitter":
			_, _ = w.Write([]byte(`{"user_fields":["username"],"location_fields":["room"],"icon":"mxc://x/y","field_types":{},
				"instances":[{"desc":"Gitter","network_id":"gitter","fields":{}},{"desc":"Other","fields":{}}]}`))
		case "/_matrix/app/v1/thirdparty/user/gitter":
			if r.Query.Get("username") != "bob" || r.Query.Get("access_token") != "" {
				t.Errorf("user lookup query %v", r.Query)
			}
			_, _ = w.Write([]byte(`[{"userid":"@bridge_bob:hs1.test","protocol":"gitter","fields":{"username":"bob"}}]`))
		case "/_matrix/app/v1/thirdparty/location":
			_, _ = w.Write([]byte(`[{"alias":"#bridge_x:hs1.test","protocol":"gitter","fields":{"room":"x"}}]`))
		default:
			return false
		}
		return true
	})
	res := alice.MustDo(t, http.MethodGet, "thirdparty/protocols", nil)
	var protocols map[string]struct {
		Instances []map[string]any `json:"instances"`
	}
	mustUnmarshal(t, res.Body, &protocols)
	if len(protocols) != 1 || len(protocols["gitter"].Instances) != 2 || protocols["gitter"].Instances[0]["instance_id"] != "bridge|gitter" ||
		protocols["gitter"].Instances[1]["instance_id"] != nil {
		t.Fatalf("protocols: %s", res.Body)
	}
	alice.MustDo(t, http.MethodGet, "thirdparty/protocol/gitter", nil)
	if n := len(as.Requests("/_matrix/app/v1/thirdparty/protocol/")); n != 1 {
		t.Fatalf("protocol metadata asked %d times, want it cached", n)
	}
	if res := alice.Do(t, http.MethodGet, "thirdparty/protocol/irc", nil); res.Status != 404 {
		t.Fatalf("unknown protocol: %d", res.Status)
	}
	res = alice.MustDo(t, http.MethodGet, "thirdparty/user/gitter?username=bob", nil)
	if !strings.Contains(string(res.Body), `"@bridge_bob:hs1.test"`) || res.Body[0] != '[' {
		t.Fatalf("user lookup: %s", res.Body)
	}
	if res := alice.Do(t, http.MethodGet, "thirdparty/location/irc?room=x", nil); res.Status != 404 {
		t.Fatalf("lookup in an unknown protocol: %d", res.Status)
	}
	res = alice.MustDo(t, http.MethodGet, "thirdparty/location?alias="+testserver.PathEscape("#bridge_x:hs1.test"), nil)
	if !strings.Contains(string(res.Body), `"#bridge_x:hs1.test"`) {
		t.Fatalf("reverse location lookup: %s", res.Body)
	}
	if res := alice.Do(t, http.MethodGet, "thirdparty/user", nil); res.Status != 400 || res.ErrCode != "M_MISSING_PARAM" {
		t.Fatalf("reverse user lookup without userid: %d %s", res.Status, res.Body)
	}
	// A service that fails is left out of the answer.
	as.Handle(func(w http.ResponseWriter, r testserver.ASRequest) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return true
	})
	if res := alice.MustDo(t, http.MethodGet, "thirdparty/user/gitter?username=bob", nil); string(res.Body) != "[]" {
		t.Fatalf("failing service: %s", res.Body)
	}
}

func TestAppServiceRoomDirectory(t *testing.T) {
	srv, as := newBridge(t)
	alice := srv.Register(t, "alice")
	bot := as.Client(srv)
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat", "name": "Bridged"}).JSON["room_id"].(string)
	path := testserver.Sprintf("directory/list/appservice/gitter/%s", room)
	if res := alice.Do(t, http.MethodPut, path, map[string]any{"visibility": "public"}); res.Status != 403 {
		t.Fatalf("a user publishing in a network: %d %s", res.Status, res.Body)
	}
	if res := bot.Do(t, http.MethodPut, path, map[string]any{"visibility": "sideways"}); res.Status != 400 {
		t.Fatalf("bad visibility: %d %s", res.Status, res.Body)
	}
	if res := bot.Do(t, http.MethodPut, testserver.Sprintf("directory/list/appservice/gitter/%s", "!nope:hs1.test"), map[string]any{"visibility": "public"}); res.Status != 404 {
		t.Fatalf("unknown room: %d %s", res.Status, res.Body)
	}
	bot.MustDo(t, http.MethodPut, path, map[string]any{"visibility": "public"})
	listed := func(body map[string]any) bool {
		res := alice.MustDo(t, http.MethodPost, "publicRooms", body)
		return strings.Contains(string(res.Body), room)
	}
	if listed(map[string]any{}) || !listed(map[string]any{"third_party_instance_id": "bridge|gitter"}) ||
		!listed(map[string]any{"include_all_networks": true}) || listed(map[string]any{"third_party_instance_id": "bridge|other"}) {
		t.Fatal("the room must be listed in its network only (and with include_all_networks)")
	}
	if listed(map[string]any{"third_party_instance_id": "nonsense"}) {
		t.Fatal("listed under an instance ID that names no network")
	}
	bot.MustDo(t, http.MethodDelete, path, nil)
	if listed(map[string]any{"third_party_instance_id": "bridge|gitter"}) {
		t.Fatal("still listed after removal")
	}
}
