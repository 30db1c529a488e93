//go:build goolm

package keyserver_test

// The end-to-end test of issue 6: real clients (mautrix-go's crypto package
// over goolm, no C library) share an encrypted room on Parley. It needs the
// goolm build tag: go test -tags goolm ./keyserver/

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// e2eClient is one device running mautrix's OlmMachine against Parley.
type e2eClient struct {
	t     *testing.T
	cli   *mautrix.Client
	mach  *crypto.OlmMachine
	since string
	// timeline collects the room events seen in syncs, by room.
	timeline map[id.RoomID][]*event.Event
}

func newE2EClient(t *testing.T, c *testserver.Client) *e2eClient {
	t.Helper()
	ctx := context.Background()
	cli, err := mautrix.NewClient(c.S.URL, c.UserID, c.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	cli.DeviceID = c.DeviceID
	cli.StateStore = mautrix.NewMemoryStateStore()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("device", string(c.DeviceID)).Logger()
	cli.Log = log
	mach := crypto.NewOlmMachine(cli, &log, crypto.NewMemoryStore(nil), cli.StateStore.(crypto.StateStore))
	if err := mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mach.ShareKeys(ctx, 0); err != nil {
		t.Fatalf("share keys: %v", err)
	}
	t.Cleanup(mach.Destroy)
	return &e2eClient{t: t, cli: cli, mach: mach, timeline: map[id.RoomID][]*event.Event{}}
}

// sync runs one /sync and feeds it to the state store and the olm machine.
func (e *e2eClient) sync() {
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
			e.timeline[roomID] = append(e.timeline[roomID], evt)
		}
	}
	e.mach.ProcessSyncResponse(ctx, resp, e.since)
	e.since = resp.NextBatch
}

// send encrypts and sends a text message.
func (e *e2eClient) send(room id.RoomID, members []id.UserID, body string) id.EventID {
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

// decrypt decrypts the event evID from the collected timeline and returns its body.
func (e *e2eClient) decrypt(room id.RoomID, evID id.EventID) (string, error) {
	e.t.Helper()
	for _, evt := range e.timeline[room] {
		if evt.ID != evID {
			continue
		}
		if evt.Type != event.EventEncrypted {
			e.t.Fatalf("event %s is %s, not encrypted", evID, evt.Type.Type)
		}
		dec, err := e.mach.DecryptMegolmEvent(context.Background(), evt)
		if err != nil {
			return "", err
		}
		return dec.Content.AsMessage().Body, nil
	}
	e.t.Fatalf("event %s not seen in %s's syncs", evID, e.cli.DeviceID)
	return "", nil
}

func (e *e2eClient) mustDecrypt(room id.RoomID, evID id.EventID, want string) {
	e.t.Helper()
	got, err := e.decrypt(room, evID)
	if err != nil {
		e.t.Fatalf("%s cannot decrypt %s: %v", e.cli.DeviceID, evID, err)
	}
	if got != want {
		e.t.Fatalf("%s decrypted %q, want %q", e.cli.DeviceID, got, want)
	}
}

func TestEndToEndEncryption(t *testing.T) {
	ctx := context.Background()
	srv := testserver.New(t)
	aliceAcc := srv.Register(t, "alice")
	bobAcc := srv.Register(t, "bob")
	alice := newE2EClient(t, aliceAcc)
	bob := newE2EClient(t, bobAcc)
	members := []id.UserID{aliceAcc.UserID, bobAcc.UserID}

	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		Invite: []id.UserID{bobAcc.UserID},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	room := created.RoomID
	if _, err := bob.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("join: %v", err)
	}
	alice.sync()
	bob.sync()
	if enc, _ := bob.cli.StateStore.IsEncrypted(ctx, room); !enc {
		t.Fatal("bob does not see the room as encrypted")
	}

	// Alice → Bob: the megolm key travels olm-encrypted over to-device,
	// after Alice claimed one of Bob's one-time keys.
	ev1 := alice.send(room, members, "hello bob")
	bob.sync()
	bob.mustDecrypt(room, ev1, "hello bob")

	// Bob → Alice.
	ev2 := bob.send(room, members, "hello alice")
	alice.sync()
	alice.mustDecrypt(room, ev2, "hello alice")

	// Alice backs up her inbound session of ev1 with a fresh backup key.
	backupKey, err := backup.NewMegolmBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	version, err := alice.cli.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
		AuthData:  backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(backupKey.PublicKey().Bytes()))},
	})
	if err != nil {
		t.Fatalf("create backup: %v", err)
	}
	var encEv1 *event.Event
	for _, evt := range alice.timeline[room] {
		if evt.ID == ev1 {
			encEv1 = evt
		}
	}
	if encEv1 == nil {
		t.Fatal("alice did not see her own message")
	}
	encContent := encEv1.Content.AsEncrypted()
	igs, err := alice.mach.CryptoStore.GetGroupSession(ctx, room, encContent.SessionID)
	if err != nil || igs == nil {
		t.Fatalf("alice's inbound session: %v", err)
	}
	first := igs.Internal.FirstKnownIndex()
	exported, err := igs.Internal.Export(first)
	if err != nil {
		t.Fatal(err)
	}
	sessionData, err := backup.EncryptSessionData(backupKey, backup.MegolmSessionData{
		Algorithm:         id.AlgorithmMegolmV1,
		SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: igs.SigningKey},
		SenderKey:         igs.SenderKey,
		SessionKey:        string(exported),
	})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := json.Marshal(sessionData)
	if _, err := alice.cli.PutKeysInBackup(ctx, version.Version, &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{
		room: {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{encContent.SessionID: {FirstMessageIndex: int(first), SessionData: sd}}},
	}}); err != nil {
		t.Fatalf("put keys in backup: %v", err)
	}

	// A third device: Alice logs in again later.
	alice2Acc := login(t, srv, aliceAcc.UserID, "ALICE2")
	alice2 := newE2EClient(t, alice2Acc)
	alice2.sync()
	// Old history is not decryptable until the key backup is restored.
	if _, err := alice2.decrypt(room, ev1); err == nil {
		t.Fatal("new device decrypted old history without keys")
	}
	if _, err := alice2.mach.DownloadAndStoreLatestKeyBackup(ctx, backupKey); err != nil {
		t.Fatalf("restore key backup: %v", err)
	}
	alice2.mustDecrypt(room, ev1, "hello bob")

	// Alice's first device learns about the new device through
	// device_lists.changed, and a new session reaches it over to-device.
	alice.sync()
	devices, err := alice.mach.CryptoStore.GetDevices(ctx, aliceAcc.UserID)
	if err != nil || devices["ALICE2"] == nil {
		t.Fatalf("alice's device list lacks ALICE2: %v %v", devices, err)
	}
	if err := alice.mach.CryptoStore.RemoveOutboundGroupSession(ctx, room); err != nil {
		t.Fatal(err)
	}
	ev3 := alice.send(room, members, "hello everyone")
	alice2.sync()
	bob.sync()
	alice2.mustDecrypt(room, ev3, "hello everyone")
	bob.mustDecrypt(room, ev3, "hello everyone")
}
