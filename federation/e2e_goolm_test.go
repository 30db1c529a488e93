//go:build goolm

package federation_test

// End-to-end encryption across two servers with real clients: mautrix-go's
// crypto package (goolm) on alice@hs1.test and bob@hs2.test. Device keys and
// one-time keys travel over federation user/keys/query and user/keys/claim,
// the megolm session over an m.direct_to_device EDU, the message in a
// transaction. It needs the goolm build tag (see e2e_wrapper_test.go).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

type e2eDevice struct {
	t     *testing.T
	cli   *mautrix.Client
	mach  *crypto.OlmMachine
	since string
	seen  map[id.EventID]*event.Event
}

func newE2EDevice(t *testing.T, c *testserver.Client) *e2eDevice {
	t.Helper()
	ctx := context.Background()
	cli, err := mautrix.NewClient(c.S.URL, c.UserID, c.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	cli.DeviceID = c.DeviceID
	cli.StateStore = mautrix.NewMemoryStateStore()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	cli.Log = log
	mach := crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), cli.StateStore.(crypto.StateStore))
	if err := mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mach.ShareKeys(ctx, 0); err != nil {
		t.Fatalf("share keys: %v", err)
	}
	t.Cleanup(mach.Destroy)
	return &e2eDevice{t: t, cli: cli, mach: mach, seen: map[id.EventID]*event.Event{}}
}

func (e *e2eDevice) sync() {
	e.t.Helper()
	ctx := context.Background()
	resp, err := e.cli.SyncRequest(ctx, 0, e.since, "", false, "")
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(append([]*event.Event{}, room.State.Events...), room.Timeline.Events...) {
			evt.RoomID = roomID
			if err := evt.Content.ParseRaw(evt.Type); err != nil && evt.StateKey != nil {
				continue
			}
			if evt.StateKey != nil {
				evt.Type.Class = event.StateEventType
				mautrix.UpdateStateStore(ctx, e.cli.StateStore, evt)
			}
		}
		for _, evt := range room.Timeline.Events {
			e.seen[evt.ID] = evt
		}
	}
	e.mach.ProcessSyncResponse(ctx, resp, e.since)
	e.since = resp.NextBatch
}

func (e *e2eDevice) send(room id.RoomID, members []id.UserID, body string) id.EventID {
	e.t.Helper()
	ctx := context.Background()
	if err := e.mach.ShareGroupSession(ctx, room, members); err != nil {
		e.t.Fatalf("share group session: %v", err)
	}
	enc, err := e.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: body})
	if err != nil {
		e.t.Fatalf("encrypt: %v", err)
	}
	resp, err := e.cli.SendMessageEvent(ctx, room, event.EventEncrypted, enc)
	if err != nil {
		e.t.Fatalf("send: %v", err)
	}
	return resp.EventID
}

// waitDecrypt syncs until evID arrives and decrypts to want.
func (e *e2eDevice) waitDecrypt(room id.RoomID, evID id.EventID, want string) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		e.sync()
		if evt := e.seen[evID]; evt != nil {
			dec, err := e.mach.DecryptMegolmEvent(context.Background(), evt)
			if err == nil {
				if got := dec.Content.AsMessage().Body; got != want {
					e.t.Fatalf("decrypted %q, want %q", got, want)
				}
				return
			}
			lastErr = err
		} else {
			lastErr = errNotSeen
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("%s could not decrypt %s: %v", e.cli.UserID, evID, lastErr)
}

var errNotSeen = errors.New("event not seen in /sync")

func TestEndToEndEncryptionAcrossServers(t *testing.T) {
	ctx := context.Background()
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"})
	aliceAcc := s[0].Register(t, "alice")
	bobAcc := s[1].Register(t, "bob")
	alice := newE2EDevice(t, aliceAcc)
	bob := newE2EDevice(t, bobAcc)
	members := []id.UserID{aliceAcc.UserID, bobAcc.UserID}

	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "public_chat",
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	room := created.RoomID
	if _, err := bob.cli.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatalf("remote join: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		alice.sync()
		if alice.cli.StateStore.IsInRoom(ctx, room, bobAcc.UserID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's join did not reach hs1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	bob.sync()

	ev1 := alice.send(room, members, "hello bob, across servers")
	bob.waitDecrypt(room, ev1, "hello bob, across servers")
	ev2 := bob.send(room, members, "hello alice, from hs2")
	alice.waitDecrypt(room, ev2, "hello alice, from hs2")
}
