package appservice_test

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

// isEvent matches a room event of type typ whose field key is value.
func isEvent(typ, key string, value any) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["type"] == typ && ev[key] == value }
}

// isMessage matches an m.room.message with that body.
func isMessage(body string) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		c, _ := ev["content"].(map[string]any)
		return ev["type"] == "m.room.message" && c["body"] == body
	}
}

func send(t *testing.T, c *testserver.Client, room, txn, body string) string {
	t.Helper()
	return c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, txn),
		map[string]any{"msgtype": "m.text", "body": body}).JSON["event_id"].(string)
}

func TestAppServiceTransactions(t *testing.T) {
	bridge := testserver.NewAppService(t, "bridge", `[{exclusive: true, regex: '@bridge_.*'}]`, `[{exclusive: true, regex: '#bridge_.*'}]`, `[]`,
		"receive_ephemeral: true")
	watcher := testserver.NewAppService(t, "watcher", `[]`, `[]`, `[{exclusive: false, regex: '!.*'}]`)
	other := testserver.NewAppService(t, "other", `[{exclusive: true, regex: '@other_.*'}]`, `[]`, `[]`)
	srv := testserver.New(t, testserver.AppServices(bridge, watcher, other))
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	bot := bridge.Client(srv)

	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	before := send(t, alice, room, "t0", "before the bridge came")
	// The room ID namespace covers every room: the watcher gets everything.
	watcher.AwaitEvent(t, "alice's first message", isEvent("m.room.message", "event_id", before))

	// A user of the bridge joins: from then on the bridge gets the room's events.
	bot.MustDo(t, http.MethodPost, "register", map[string]any{"type": "m.login.application_service", "username": "bridge_ghost", "inhibit_login": true})
	bot.MustDo(t, http.MethodPost, "join/"+testserver.PathEscape(room)+"?user_id="+testserver.PathEscape("@bridge_ghost:hs1.test"), map[string]any{})
	join, txn := bridge.AwaitEvent(t, "the ghost's join", isEvent("m.room.member", "state_key", "@bridge_ghost:hs1.test"))
	if txn.Authorization != "Bearer "+bridge.HSToken {
		t.Fatalf("transaction authorization %q", txn.Authorization)
	}
	for _, key := range []string{"event_id", "room_id", "sender", "origin_server_ts", "content", "unsigned", "type"} {
		if _, ok := join[key]; !ok {
			t.Fatalf("event without %s: %v", key, join)
		}
	}
	msg := send(t, alice, room, "t1", "hello bridge")
	ev, _ := bridge.AwaitEvent(t, "alice's message", isMessage("hello bridge"))
	if ev["event_id"] != msg || ev["room_id"] != room || ev["sender"] != "@alice:hs1.test" {
		t.Fatalf("message event %v", ev)
	}

	// A room with one of the bridge's aliases is the bridge's too.
	room2 := bob.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	bot.MustDo(t, http.MethodPut, "directory/room/"+testserver.PathEscape("#bridge_two:hs1.test"), map[string]any{"room_id": room2})
	send(t, bob, room2, "t2", "in an aliased room")
	bridge.AwaitEvent(t, "bob's message in the aliased room", isMessage("in an aliased room"))

	// Ephemeral events, for the bridge that asked for them.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, alice.UserID), map[string]any{"typing": true, "timeout": 10000})
	typing, _ := bridge.AwaitEvent(t, "alice typing", isEvent("m.typing", "room_id", room))
	if users := typing["content"].(map[string]any)["user_ids"].([]any); len(users) != 1 || users[0] != "@alice:hs1.test" {
		t.Fatalf("typing %v", typing)
	}
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, msg), map[string]any{})
	receipt, _ := bridge.AwaitEvent(t, "alice's receipt", isEvent("m.receipt", "room_id", room))
	if _, ok := receipt["content"].(map[string]any)[msg]; !ok {
		t.Fatalf("receipt %v", receipt)
	}

	// Transaction IDs increase from one delivered transaction to the next.
	var last int
	for _, txn := range bridge.Delivered(t) {
		n, err := strconv.Atoi(txn.ID)
		if err != nil || n <= last {
			t.Fatalf("transaction IDs not increasing: %d then %q", last, txn.ID)
		}
		last = n
	}
	// What the bridge is not interested in never reaches it.
	for _, txn := range bridge.Delivered(t) {
		for _, e := range txn.Events {
			if e["event_id"] == before {
				t.Fatal("the bridge got an event from before any of its users joined")
			}
		}
	}
	for _, txn := range watcher.Delivered(t) {
		if len(txn.Ephemeral) > 0 {
			t.Fatal("ephemeral events for a service that did not ask for them")
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(other.Requests("/")); n != 0 {
		t.Fatalf("an uninterested service got %d requests", n)
	}
}

// failingTransactions makes as answer 500 to transactions while failing is set.
func failingTransactions(as *testserver.AppService, failing *atomic.Bool) {
	as.Handle(func(w http.ResponseWriter, r testserver.ASRequest) bool {
		if failing.Load() && r.Method == http.MethodPut {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN"}`))
			return true
		}
		return false
	})
}

// awaitAttempts waits until as saw at least n transaction attempts.
func awaitAttempts(t *testing.T, as *testserver.AppService, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(as.Transactions(t)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d transaction attempts in 10s, want %d", len(as.Transactions(t)), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deliveredOnce checks that every event in want reached as in exactly one
// delivered transaction, and returns the delivered transactions.
func deliveredOnce(t *testing.T, as *testserver.AppService, want []string) []testserver.ASTxn {
	t.Helper()
	delivered := as.Delivered(t)
	seen := map[string]int{}
	for _, txn := range delivered {
		for _, e := range txn.Events {
			seen[e["event_id"].(string)]++
		}
	}
	for _, evID := range want {
		if seen[evID] != 1 {
			t.Fatalf("event %s delivered %d times", evID, seen[evID])
		}
	}
	return delivered
}

// watchingBridge is a service interested in every room.
func watchingBridge(t *testing.T) *testserver.AppService {
	return testserver.NewAppService(t, "bridge", `[]`, `[]`, `[{exclusive: false, regex: '!.*'}]`)
}

// downBridge starts a server whose service refuses transactions while the
// returned flag is set (it starts set), with alice in a new room.
func downBridge(t *testing.T) (bridge *testserver.AppService, failing *atomic.Bool, srv *testserver.Server, alice *testserver.Client, room string) {
	t.Helper()
	bridge = watchingBridge(t)
	failing = new(atomic.Bool)
	failing.Store(true)
	failingTransactions(bridge, failing)
	srv = testserver.New(t, testserver.AppServices(bridge))
	alice = srv.Register(t, "alice")
	room = alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	return bridge, failing, srv, alice, room
}

func TestAppServiceTransactionRetry(t *testing.T) {
	bridge, failing, _, alice, room := downBridge(t)
	awaitAttempts(t, bridge, 2) // the room's creation, refused twice
	first := bridge.Transactions(t)[0]
	var sent []string
	for i := range 5 {
		sent = append(sent, send(t, alice, room, "m"+strconv.Itoa(i), "while down "+strconv.Itoa(i)))
	}
	failing.Store(false)
	bridge.AwaitEvent(t, "the last message", isMessage("while down 4"))
	delivered := deliveredOnce(t, bridge, sent)
	// The refused transaction was retried with the same ID and the same events.
	if delivered[0].ID != first.ID || len(delivered[0].Events) != len(first.Events) || delivered[0].Events[0]["event_id"] != first.Events[0]["event_id"] {
		t.Fatalf("first delivered transaction %s (%d events), refused one %s (%d events)", delivered[0].ID, len(delivered[0].Events), first.ID, len(first.Events))
	}
	for _, txn := range bridge.Transactions(t) {
		if txn.Status != http.StatusOK && txn.ID != first.ID {
			t.Fatalf("refused transaction %s is not the first one %s", txn.ID, first.ID)
		}
	}
	// What queued up meanwhile went out batched, in a transaction with the next ID.
	if len(delivered) < 2 || delivered[1].ID != strconv.Itoa(mustAtoi(t, first.ID)+1) || len(delivered[1].Events) < 2 {
		t.Fatalf("queued events not batched into transaction %d: %d transactions", mustAtoi(t, first.ID)+1, len(delivered))
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAppServiceQueueSurvivesRestart(t *testing.T) {
	bridge, failing, srv, alice, room := downBridge(t)
	var sent []string
	for i := range 3 {
		sent = append(sent, send(t, alice, room, "m"+strconv.Itoa(i), "before restart "+strconv.Itoa(i)))
	}
	awaitAttempts(t, bridge, 1)
	refused := bridge.Transactions(t)[0].ID
	srv.Close()

	// The service recovers while the homeserver is down; a new process on
	// the same database delivers everything, starting with the refused transaction.
	failing.Store(false)
	again := testserver.Start(t, srv.Cfg)
	bridge.AwaitEvent(t, "the last message", isMessage("before restart 2"))
	delivered := deliveredOnce(t, bridge, sent)
	if delivered[0].ID != refused {
		t.Fatalf("after the restart transaction %s came first, want the refused %s", delivered[0].ID, refused)
	}
	// And it goes on from there.
	alice.S = again
	sent = append(sent, send(t, alice, room, "after", "after restart"))
	bridge.AwaitEvent(t, "a message after the restart", isMessage("after restart"))
	delivered = deliveredOnce(t, bridge, sent)
	for i := 1; i < len(delivered); i++ {
		if mustAtoi(t, delivered[i].ID) <= mustAtoi(t, delivered[i-1].ID) {
			t.Fatalf("transaction %s delivered after %s", delivered[i].ID, delivered[i-1].ID)
		}
	}
}

// TestAppServiceOneSenderPerTransaction runs two processes on one
// PostgreSQL database: every transaction is sent by one of them only.
func TestAppServiceOneSenderPerTransaction(t *testing.T) {
	bridge := watchingBridge(t)
	srv1 := testserver.New(t, testserver.AppServices(bridge), func(c *config.Config) { c.Database.URL = testserver.PostgresDatabase(t) })
	srv2 := testserver.Start(t, srv1.Cfg)
	alice := srv1.Register(t, "alice")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	alice2 := &testserver.Client{S: srv2, UserID: alice.UserID, AccessToken: alice.AccessToken}
	var sent []string
	for i := range 20 {
		c := alice
		if i%2 == 1 {
			c = alice2
		}
		sent = append(sent, send(t, c, room, "p"+strconv.Itoa(i), "message "+strconv.Itoa(i)))
	}
	bridge.AwaitEvent(t, "the last message", isMessage("message 19"))
	// One message through each process alone: the one without the lease
	// wakes the other through the database.
	sent = append(sent, send(t, alice, room, "q1", "through the first"))
	bridge.AwaitEvent(t, "a message through the first process", isMessage("through the first"))
	sent = append(sent, send(t, alice2, room, "q2", "through the second"))
	bridge.AwaitEvent(t, "a message through the second process", isMessage("through the second"))
	delivered := deliveredOnce(t, bridge, sent)
	seen := map[string]bool{}
	for _, txn := range bridge.Transactions(t) {
		if seen[txn.ID] {
			t.Fatalf("transaction %s sent twice", txn.ID)
		}
		seen[txn.ID] = true
	}
	for i, txn := range delivered {
		if mustAtoi(t, txn.ID) != i+1 {
			t.Fatalf("transaction IDs not consecutive: #%d is %s", i, txn.ID)
		}
	}
}
