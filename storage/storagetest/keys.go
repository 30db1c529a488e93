package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// runKeys runs the end-to-end encryption part of the suite.
func runKeys(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("KeysUploadClaim", func(t *testing.T) { testKeysUploadClaim(t, open(t)) })
	t.Run("ToDevice", func(t *testing.T) { testToDevice(t, open(t)) })
	t.Run("DeviceLists", func(t *testing.T) { testDeviceLists(t, open(t)) })
	t.Run("CrossSigning", func(t *testing.T) { testCrossSigningStore(t, open(t)) })
	t.Run("KeyBackup", func(t *testing.T) { testKeyBackup(t, open(t)) })
	t.Run("DehydratedDevice", func(t *testing.T) { testDehydrated(t, open(t)) })
}

func testKeysUploadClaim(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.CreateDevice(ctx, storage.NewDevice{UserID: alice, DeviceID: "D1", DisplayName: "Laptop", AccessTokenHash: hash("t1")})
	must(t, err)
	otks := map[string]json.RawMessage{}
	for i := 0; i < 3; i++ {
		otks[fmt.Sprintf("signed_curve25519:K%d", i)] = json.RawMessage(fmt.Sprintf(`{"key":"k%d"}`, i))
	}
	counts, pos, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: alice, DeviceID: "D1", DeviceKeys: json.RawMessage(`{"a":1}`),
		OneTimeKeys: otks, FallbackKeys: map[string]json.RawMessage{"signed_curve25519:FB": json.RawMessage(`{"key":"fb"}`)}})
	must(t, err)
	if counts["signed_curve25519"] != 3 || pos == 0 {
		t.Fatalf("counts %v pos %d", counts, pos)
	}
	// The same device keys again are no device-list change.
	if _, pos2, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: alice, DeviceID: "D1", DeviceKeys: json.RawMessage(`{"a":1}`)}); err != nil || pos2 != 0 {
		t.Fatalf("unchanged keys: pos %d err %v", pos2, err)
	}
	dk, err := s.DeviceKeys(ctx, map[id.UserID][]id.DeviceID{alice: nil, bob: nil})
	must(t, err)
	if string(dk[alice]["D1"].JSON) != `{"a":1}` || dk[alice]["D1"].DisplayName != "Laptop" || dk[bob] == nil || len(dk[bob]) != 0 {
		t.Fatalf("device keys: %+v", dk)
	}

	// Concurrent claims: each one-time key once, then the fallback key.
	const claimers = 10
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for i := 0; i < claimers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.ClaimKeys(ctx, map[id.UserID]map[id.DeviceID]string{alice: {"D1": "signed_curve25519"}})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			got[res[alice]["D1"].KeyID]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != 4 || got["signed_curve25519:FB"] != claimers-3 {
		t.Fatalf("claims: %v", got)
	}
	if types, err := s.UnusedFallbackKeyTypes(ctx, alice, "D1"); err != nil || len(types) != 0 {
		t.Fatalf("used fallback still unused: %v %v", types, err)
	}
	// Re-uploading the used fallback key keeps it used; a new one is unused.
	_, _, err = s.UploadKeys(ctx, storage.KeyUpload{UserID: alice, DeviceID: "D1", FallbackKeys: map[string]json.RawMessage{"signed_curve25519:FB": json.RawMessage(`{"key":"fb"}`)}})
	must(t, err)
	if types, _ := s.UnusedFallbackKeyTypes(ctx, alice, "D1"); len(types) != 0 {
		t.Fatal("re-uploaded fallback key became unused")
	}
	_, _, err = s.UploadKeys(ctx, storage.KeyUpload{UserID: alice, DeviceID: "D1", FallbackKeys: map[string]json.RawMessage{"signed_curve25519:FB2": json.RawMessage(`{"key":"fb2"}`)}})
	must(t, err)
	if types, _ := s.UnusedFallbackKeyTypes(ctx, alice, "D1"); len(types) != 1 {
		t.Fatal("new fallback key not unused")
	}
	// DeviceKeyCounts answers both questions at once.
	otk, err := s.OneTimeKeyCounts(ctx, alice, "D1")
	must(t, err)
	both, fallback, err := s.DeviceKeyCounts(ctx, alice, "D1")
	must(t, err)
	if !maps.Equal(both, otk) || !slices.Equal(fallback, []string{"signed_curve25519"}) {
		t.Fatalf("device key counts %v %v, want %v and one fallback type", both, fallback, otk)
	}
	_, _, err = s.UploadKeys(ctx, storage.KeyUpload{UserID: alice, DeviceID: "D1", OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:Y": json.RawMessage(`"y"`)}})
	must(t, err)
	if both, _, _ := s.DeviceKeyCounts(ctx, alice, "D1"); both["signed_curve25519"] != otk["signed_curve25519"]+1 {
		t.Fatalf("device key counts after upload: %v", both)
	}
	// No key at all for an unknown device or algorithm.
	res, err := s.ClaimKeys(ctx, map[id.UserID]map[id.DeviceID]string{alice: {"D1": "curve25519", "NONE": "signed_curve25519"}})
	must(t, err)
	if len(res[alice]) != 0 {
		t.Fatalf("claimed %v", res)
	}
}

func testToDevice(t *testing.T, s storage.Store) {
	ctx := context.Background()
	start, err := s.ToDevicePosition(ctx)
	must(t, err)
	msg := func(dev id.DeviceID, n int) storage.ToDeviceMessage {
		return storage.ToDeviceMessage{UserID: bob, DeviceID: dev, Type: "m.test", Content: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
	}
	p1, dup, err := s.SendToDevice(ctx, alice, "A", "txn1", []storage.ToDeviceMessage{msg("B1", 1), msg("B2", 1)})
	must(t, err)
	if dup || p1 <= start {
		t.Fatalf("first send: pos %d dup %v", p1, dup)
	}
	if _, dup, err := s.SendToDevice(ctx, alice, "A", "txn1", []storage.ToDeviceMessage{msg("B1", 9)}); err != nil || !dup {
		t.Fatalf("retry not detected: %v %v", dup, err)
	}
	// The same txn ID from another device is another transaction.
	p2, dup, err := s.SendToDevice(ctx, alice, "A2", "txn1", []storage.ToDeviceMessage{msg("B1", 2)})
	must(t, err)
	if dup || p2 <= p1 {
		t.Fatalf("second send: pos %d dup %v", p2, dup)
	}
	if pos, _ := s.ToDevicePosition(ctx); pos != p2 {
		t.Fatalf("position %d, want %d", pos, p2)
	}
	all, err := s.ToDeviceMessages(ctx, bob, "B1", start, p2, 0)
	must(t, err)
	if len(all) != 2 || all[0].Sender != alice || string(all[1].Content) != `{"n":2}` {
		t.Fatalf("messages: %+v", all)
	}
	if first, _ := s.ToDeviceMessages(ctx, bob, "B1", start, p2, 1); len(first) != 1 || first[0].Pos != p1 {
		t.Fatalf("limit: %+v", first)
	}
	if later, _ := s.ToDeviceMessages(ctx, bob, "B1", p1, p2, 0); len(later) != 1 {
		t.Fatalf("from: %+v", later)
	}
	must(t, s.AckToDevice(ctx, bob, "B1", p1))
	if left, _ := s.ToDeviceMessages(ctx, bob, "B1", 0, p2, 0); len(left) != 1 || left[0].Pos != p2 {
		t.Fatalf("after ack: %+v", left)
	}
	if other, _ := s.ToDeviceMessages(ctx, bob, "B2", 0, p2, 0); len(other) != 1 {
		t.Fatalf("ack touched another device: %+v", other)
	}
}

func testDeviceLists(t *testing.T, s storage.Store) {
	ctx := context.Background()
	p0, err := s.DeviceListPosition(ctx)
	must(t, err)
	_, err = s.CreateDevice(ctx, newDevice(alice, "D1", "t1"))
	must(t, err)
	p1, err := s.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: bob, Observer: alice, Left: true}, {UserID: alice, Observer: bob}})
	must(t, err)
	changes, err := s.DeviceListChanges(ctx, p0, p1, alice)
	must(t, err)
	// Alice sees her own new device (for everyone) and Bob's "left" for her.
	var sawOwn, sawLeft bool
	for _, c := range changes {
		sawOwn = sawOwn || (c.UserID == alice && c.Observer == "")
		sawLeft = sawLeft || (c.UserID == bob && c.Observer == alice && c.Left)
		if c.Observer == bob {
			t.Fatalf("alice got bob's entry: %+v", c)
		}
	}
	if !sawOwn || !sawLeft {
		t.Fatalf("changes: %+v", changes)
	}
	// The latest change for everyone before a position (observer-only entries do not count).
	pOwn, err := s.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: bob}})
	must(t, err)
	_, err = s.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: bob, Observer: alice}})
	must(t, err)
	pLast, err := s.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: alice}})
	must(t, err)
	if last, err := s.LastDeviceListChange(ctx, bob, pLast+1); err != nil || last != pOwn {
		t.Fatalf("last change of bob: %d %v, want %d", last, err, pOwn)
	}
	if last, err := s.LastDeviceListChange(ctx, bob, pOwn); err != nil || last >= pOwn {
		t.Fatalf("last change of bob before %d: %d %v", pOwn, last, err)
	}
	if last, err := s.LastDeviceListChange(ctx, "@nobody:x", pLast); err != nil || last != 0 {
		t.Fatalf("last change of nobody: %d %v", last, err)
	}
	// Deleting a device removes its keys and is a change.
	_, _, err = s.UploadKeys(ctx, storage.KeyUpload{UserID: alice, DeviceID: "D1", DeviceKeys: json.RawMessage(`{}`)})
	must(t, err)
	p2, _ := s.DeviceListPosition(ctx)
	must(t, s.DeleteDevice(ctx, alice, "D1"))
	p3, _ := s.DeviceListPosition(ctx)
	if p3 <= p2 {
		t.Fatal("device deletion is no device-list change")
	}
	if dk, _ := s.DeviceKeys(ctx, map[id.UserID][]id.DeviceID{alice: nil}); len(dk[alice]) != 0 {
		t.Fatalf("keys of a deleted device: %+v", dk)
	}
}

func testCrossSigningStore(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.SetCrossSigningKeys(ctx, alice, map[string]json.RawMessage{"master": json.RawMessage(`{"m":1}`), "self_signing": json.RawMessage(`{"s":1}`)})
	must(t, err)
	_, err = s.AddKeySignatures(ctx, []storage.KeySignature{{TargetUser: alice, TargetKey: "D1", SignerUser: alice, SignerKey: "ed25519:SSK", Signature: "sig"}})
	must(t, err)
	if sigs, _ := s.KeySignatures(ctx, []id.UserID{alice, bob}); len(sigs) != 1 || sigs[0].Signature != "sig" {
		t.Fatalf("signatures: %+v", sigs)
	}
	// A new master key drops signatures made under the old one.
	_, err = s.SetCrossSigningKeys(ctx, alice, map[string]json.RawMessage{"master": json.RawMessage(`{"m":2}`)})
	must(t, err)
	if sigs, _ := s.KeySignatures(ctx, []id.UserID{alice}); len(sigs) != 0 {
		t.Fatalf("signatures survived: %+v", sigs)
	}
	// A new user-signing key alone is news for its owner only; a signature
	// on another user's key is news for the signer only.
	p0, _ := s.DeviceListPosition(ctx)
	_, err = s.SetCrossSigningKeys(ctx, alice, map[string]json.RawMessage{"user_signing": json.RawMessage(`{"u":1}`)})
	must(t, err)
	_, err = s.AddKeySignatures(ctx, []storage.KeySignature{{TargetUser: bob, TargetKey: "BOBMASTER", SignerUser: alice, SignerKey: "ed25519:USK", Signature: "s2"}})
	must(t, err)
	p1, _ := s.DeviceListPosition(ctx)
	forBob, err := s.DeviceListChanges(ctx, p0, p1, bob)
	must(t, err)
	forAlice, err := s.DeviceListChanges(ctx, p0, p1, alice)
	must(t, err)
	if len(forBob) != 0 || len(forAlice) != 2 || forAlice[0].UserID != alice || forAlice[1].UserID != bob {
		t.Fatalf("private changes: bob %+v alice %+v", forBob, forAlice)
	}
	keys, err := s.CrossSigningKeys(ctx, []id.UserID{alice, bob})
	must(t, err)
	if string(keys[alice]["master"]) != `{"m":2}` || string(keys[alice]["self_signing"]) != `{"s":1}` || keys[bob] != nil {
		t.Fatalf("keys: %+v", keys)
	}
}

func testKeyBackup(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if _, err := s.GetBackupVersion(ctx, alice, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("no backup: %v", err)
	}
	v1, err := s.CreateBackupVersion(ctx, alice, "alg", json.RawMessage(`{"k":1}`))
	must(t, err)
	key := func(first, fwd int64, verified bool, data string) storage.BackupKey {
		return storage.BackupKey{RoomID: "!r:test", SessionID: "s", FirstMessageIndex: first, ForwardedCount: fwd, IsVerified: verified, SessionData: json.RawMessage(`{"d":"` + data + `"}`)}
	}
	etag1, count, _, err := s.PutBackupKeys(ctx, alice, v1, []storage.BackupKey{key(5, 1, false, "a")})
	must(t, err)
	if count != 1 {
		t.Fatalf("count %d", count)
	}
	// A worse key changes nothing, not even the etag; a better one replaces.
	if etag, _, _, _ := s.PutBackupKeys(ctx, alice, v1, []storage.BackupKey{key(6, 0, false, "worse")}); etag != etag1 {
		t.Fatal("etag moved for a rejected key")
	}
	etag2, _, _, err := s.PutBackupKeys(ctx, alice, v1, []storage.BackupKey{key(5, 0, false, "better")})
	must(t, err)
	if etag2 == etag1 {
		t.Fatal("etag did not move")
	}
	keys, err := s.BackupKeys(ctx, alice, v1, "!r:test", "s")
	must(t, err)
	if len(keys) != 1 || string(keys[0].SessionData) != `{"d":"better"}` {
		t.Fatalf("keys: %+v", keys)
	}
	v2, err := s.CreateBackupVersion(ctx, alice, "alg", json.RawMessage(`{"k":2}`))
	must(t, err)
	_, _, current, err := s.PutBackupKeys(ctx, alice, v1, []storage.BackupKey{key(0, 0, true, "x")})
	if !errors.Is(err, storage.ErrWrongBackupVersion) || current != v2 {
		t.Fatalf("write to old version: %v current %d", err, current)
	}
	if _, _, _, err := s.PutBackupKeys(ctx, alice, 99, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	if b, err := s.GetBackupVersion(ctx, alice, 0); err != nil || b.Version != v2 {
		t.Fatalf("current: %+v %v", b, err)
	}
	must(t, s.UpdateBackupVersion(ctx, alice, v2, json.RawMessage(`{"k":3}`)))
	must(t, s.DeleteBackupVersion(ctx, alice, v2))
	must(t, s.DeleteBackupVersion(ctx, alice, v2))
	wantErr(t, s.DeleteBackupVersion(ctx, alice, 99), storage.ErrNotFound)
	wantErr(t, s.UpdateBackupVersion(ctx, alice, v2, json.RawMessage(`{}`)), storage.ErrNotFound)
	if b, err := s.GetBackupVersion(ctx, alice, 0); err != nil || b.Version != v1 || b.Count != 1 {
		t.Fatalf("after delete: %+v %v", b, err)
	}
	if _, count, err := s.DeleteBackupKeys(ctx, alice, v1, "", ""); err != nil || count != 0 {
		t.Fatalf("delete keys: %d %v", count, err)
	}
	if _, err := s.GetBackupVersion(ctx, bob, v1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another user's backup: %v", err)
	}
}

func testDehydrated(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.CreateDevice(ctx, newDevice(alice, "REAL", "t1"))
	must(t, err)
	wantErr(t, s.SetDehydratedDevice(ctx, alice, "REAL", "", json.RawMessage(`{}`), storage.KeyUpload{}), storage.ErrConflict)
	must(t, s.SetDehydratedDevice(ctx, alice, "DH1", "dh", json.RawMessage(`{"p":1}`), storage.KeyUpload{DeviceKeys: json.RawMessage(`{"k":1}`)}))
	dev, data, err := s.GetDehydratedDevice(ctx, alice)
	must(t, err)
	if dev != "DH1" || string(data) != `{"p":1}` {
		t.Fatalf("get: %s %s", dev, data)
	}
	must(t, s.SetDehydratedDevice(ctx, alice, "DH2", "dh", json.RawMessage(`{"p":2}`), storage.KeyUpload{DeviceKeys: json.RawMessage(`{"k":2}`)}))
	dk, _ := s.DeviceKeys(ctx, map[id.UserID][]id.DeviceID{alice: nil})
	if dk[alice]["DH1"].JSON != nil || dk[alice]["DH2"].JSON == nil {
		t.Fatalf("replaced device keys: %+v", dk)
	}
	if dev, err := s.DeleteDehydratedDevice(ctx, alice); err != nil || dev != "DH2" {
		t.Fatalf("delete: %s %v", dev, err)
	}
	if _, err := s.DeleteDehydratedDevice(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	if _, _, err := s.GetDehydratedDevice(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}
