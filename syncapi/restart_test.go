package syncapi_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"parley/internal/testserver"
)

// TestTokensSurviveRestart checks that the persistent streams (account data,
// receipts, notification counts) keep their positions across a restart: an
// old token neither repeats old data nor misses new data.
func TestTokensSurviveRestart(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	e1 := sendMsg(t, bob, room, text("one"))
	e2 := sendMsg(t, alice, room, text("two"))
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/com.example.a", alice.UserID), map[string]any{"v": 1})
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, e1), map[string]any{})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("presence/%s/status", bob.UserID), map[string]any{"presence": "online"})
	tok := inboxSync(t, alice, nil).NextBatch

	cfg := srv.Cfg
	srv.Close()
	srv2 := testserver.Start(t, cfg)
	alice.S, bob.S = srv2, srv2

	s := inboxSync(t, alice, map[string]string{"since": tok, "set_presence": "offline"})
	if len(findType(s.AccountData.Events, "com.example.a")) != 0 || len(receiptsIn(s, room)) != 0 {
		t.Fatalf("old data repeated after restart: %s", s.raw)
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/com.example.b", alice.UserID), map[string]any{"v": 2})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, e2), map[string]any{})
	s2 := inboxSync(t, alice, map[string]string{"since": s.NextBatch, "timeout": "2000", "set_presence": "offline"})
	if len(findType(s2.AccountData.Events, "com.example.b")) != 1 {
		t.Fatalf("new account data missing after restart: %s", s2.raw)
	}
	if receiptsIn(s2, room)[e2]["m.read"][string(bob.UserID)] == nil {
		t.Fatalf("new receipt missing after restart: %s", s2.raw)
	}
	// The in-memory typing stream restarted at 0; a token from before still works.
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, bob.UserID), map[string]any{"typing": true, "timeout": 5000})
	s3 := inboxSync(t, alice, map[string]string{"since": tok, "set_presence": "offline"})
	if users, _ := typingUsers(t, s3, room); len(users) != 1 {
		t.Fatalf("typing after restart with an old token: %s", s3.raw)
	}
}

// TestPushQueueSurvivesRestart checks that a queued push is delivered by the
// next process when the gateway was down before the restart.
func TestPushQueueSurvivesRestart(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	got := make(chan struct{}, 10)
	var up atomic.Bool
	gw := newGateway(t, up.Load, got)
	bob.MustDo(t, http.MethodPost, "pushers/set", map[string]any{"pushkey": "k", "kind": "http", "app_id": "a", "app_display_name": "A",
		"device_display_name": "D", "lang": "en", "data": map[string]any{"url": gw + "/_matrix/push/v1/notify"}})
	sendMsg(t, alice, room, text("hello"))
	time.Sleep(300 * time.Millisecond) // the first attempt fails
	cfg := srv.Cfg
	srv.Close()
	up.Store(true)
	testserver.Start(t, cfg)
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("queued push not delivered after restart")
	}
}
