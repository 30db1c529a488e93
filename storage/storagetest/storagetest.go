// Package storagetest is the conformance suite every storage.Store
// implementation passes, on every database it supports.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// Run runs the whole suite; open returns a fresh, empty, migrated store.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open(t)) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, open(t)) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefresh(t, open(t)) })
	t.Run("LoginTokensAndNonces", func(t *testing.T) { testLoginTokens(t, open(t)) })
	t.Run("UIASessions", func(t *testing.T) { testUIA(t, open(t)) })
	t.Run("RegistrationTokens", func(t *testing.T) { testRegistrationTokens(t, open(t)) })
	t.Run("Profiles", func(t *testing.T) { testProfiles(t, open(t)) })
	runKeys(t, open)
	runSyncData(t, open)
	runRooms(t, open)
	runAppServices(t, open)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func hash(s string) []byte {
	b := make([]byte, 32)
	copy(b, s)
	return b
}

const alice, bob = id.UserID("@alice:test"), id.UserID("@bob:test")

func newDevice(user id.UserID, dev id.DeviceID, tok string) storage.NewDevice {
	return storage.NewDevice{UserID: user, DeviceID: dev, AccessTokenHash: hash(tok), IP: "10.0.0.1"}
}

func testAccounts(t *testing.T, s storage.Store) {
	ctx := context.Background()
	must(t, s.CreateAccount(ctx, storage.Account{UserID: alice, PasswordHash: "h1", IsAdmin: true}))
	wantErr(t, s.CreateAccount(ctx, storage.Account{UserID: alice}), storage.ErrConflict)
	acc, err := s.GetAccount(ctx, alice)
	must(t, err)
	if acc.PasswordHash != "h1" || !acc.IsAdmin || acc.IsGuest || acc.Deactivated || acc.CreatedTS == 0 {
		t.Fatalf("account: %+v", acc)
	}
	_, err = s.GetAccount(ctx, bob)
	wantErr(t, err, storage.ErrNotFound)

	// Register writes account, profile, device, token bookkeeping and UIA deletion at once.
	one := 1
	must(t, s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "tok", UsesAllowed: &one}))
	must(t, s.ReserveRegistrationToken(ctx, "tok", time.Now().UnixMilli()))
	must(t, s.CreateUIASession(ctx, storage.UIASession{ID: "sess", Op: "register", CreatedTS: time.Now().UnixMilli()}, 0))
	d := newDevice(bob, "BOBDEV", "bobtok")
	dev, err := s.Register(ctx, storage.Registration{
		Account: storage.Account{UserID: bob, PasswordHash: "h2"}, DisplayName: "Bob", Device: &d,
		RegistrationToken: "tok", UIASession: "sess",
	})
	must(t, err)
	if dev.DeviceID != "BOBDEV" || dev.SessionID == 0 {
		t.Fatalf("device: %+v", dev)
	}
	tok, err := s.GetRegistrationToken(ctx, "tok")
	must(t, err)
	if tok.Pending != 0 || tok.Completed != 1 {
		t.Fatalf("token: %+v", tok)
	}
	sess, err := s.GetUIASession(ctx, "sess")
	must(t, err)
	if sess.ResultUserID != bob || sess.RegistrationToken != "" {
		t.Fatalf("session after Register: %+v", sess)
	}
	p, err := s.GetProfile(ctx, bob)
	must(t, err)
	if string(p["displayname"]) != `"Bob"` {
		t.Fatalf("profile: %v", p)
	}
	// A conflicting Register changes nothing.
	_, err = s.Register(ctx, storage.Registration{Account: storage.Account{UserID: bob}, RegistrationToken: "tok"})
	wantErr(t, err, storage.ErrConflict)
	tok, _ = s.GetRegistrationToken(ctx, "tok")
	if tok.Completed != 1 {
		t.Fatalf("failed Register touched the token: %+v", tok)
	}

	// Password change logs out every device but the kept one.
	_, err = s.CreateDevice(ctx, newDevice(bob, "OTHER", "othertok"))
	must(t, err)
	must(t, s.SetPassword(ctx, bob, "h3", true, "BOBDEV"))
	acc, _ = s.GetAccount(ctx, bob)
	if acc.PasswordHash != "h3" {
		t.Fatalf("password not changed")
	}
	_, _, err = s.DeviceByAccessToken(ctx, hash("othertok"))
	wantErr(t, err, storage.ErrNotFound)
	_, _, err = s.DeviceByAccessToken(ctx, hash("bobtok"))
	must(t, err)
	wantErr(t, s.SetPassword(ctx, "@nobody:test", "x", false, ""), storage.ErrNotFound)

	// Deactivation revokes everything at once.
	must(t, s.DeactivateAccount(ctx, bob, true))
	acc, _ = s.GetAccount(ctx, bob)
	if !acc.Deactivated {
		t.Fatal("not deactivated")
	}
	_, _, err = s.DeviceByAccessToken(ctx, hash("bobtok"))
	wantErr(t, err, storage.ErrNotFound)
	devs, err := s.ListDevices(ctx, bob)
	must(t, err)
	if len(devs) != 0 {
		t.Fatalf("devices left: %v", devs)
	}
	p, _ = s.GetProfile(ctx, bob)
	if len(p) != 0 {
		t.Fatalf("erased profile: %v", p)
	}
	wantErr(t, s.DeactivateAccount(ctx, "@nobody:test", false), storage.ErrNotFound)
}

func testDevices(t *testing.T, s storage.Store) {
	ctx := context.Background()
	must(t, s.CreateAccount(ctx, storage.Account{UserID: alice, IsAdmin: true}))
	for _, d := range []string{"A", "B", "C", "D"} {
		_, err := s.CreateDevice(ctx, newDevice(alice, id.DeviceID(d), "tok"+d))
		must(t, err)
	}
	_, err := s.CreateDevice(ctx, newDevice(alice, "E", "tokA"))
	wantErr(t, err, storage.ErrConflict)

	dev, expired, err := s.DeviceByAccessToken(ctx, hash("tokA"))
	must(t, err)
	if expired || dev.UserID != alice || dev.DeviceID != "A" || dev.LastSeenIP != "10.0.0.1" || !dev.IsAdmin {
		t.Fatalf("device by token: %+v %v", dev, expired)
	}
	// Re-login on a device replaces its token but keeps its name.
	must(t, s.SetDeviceDisplayName(ctx, alice, "A", "Laptop"))
	d := newDevice(alice, "A", "tokA2")
	_, err = s.CreateDevice(ctx, d)
	must(t, err)
	_, _, err = s.DeviceByAccessToken(ctx, hash("tokA"))
	wantErr(t, err, storage.ErrNotFound)
	got, err := s.GetDevice(ctx, alice, "A")
	must(t, err)
	if got.DisplayName != "Laptop" {
		t.Fatalf("name lost: %+v", got)
	}
	wantErr(t, s.SetDeviceDisplayName(ctx, alice, "ZZ", "x"), storage.ErrNotFound)
	_, err = s.GetDevice(ctx, alice, "ZZ")
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.UpdateDeviceLastSeen(ctx, alice, "B", 12345, "10.9.9.9"))
	got, _ = s.GetDevice(ctx, alice, "B")
	if got.LastSeenTS != 12345 || got.LastSeenIP != "10.9.9.9" {
		t.Fatalf("last seen: %+v", got)
	}
	// Expired tokens are reported as such.
	exp := newDevice(alice, "X", "tokX")
	exp.ExpiresTS = time.Now().Add(-time.Second).UnixMilli()
	_, err = s.CreateDevice(ctx, exp)
	must(t, err)
	if _, expired, err := s.DeviceByAccessToken(ctx, hash("tokX")); err != nil || !expired {
		t.Fatalf("expired token: %v %v", expired, err)
	}

	must(t, s.DeleteDevice(ctx, alice, "B"))
	wantErr(t, s.DeleteDevice(ctx, alice, "B"), storage.ErrNotFound)
	must(t, s.DeleteDevices(ctx, alice, []id.DeviceID{"C", "nope"}))
	devs, err := s.ListDevices(ctx, alice)
	must(t, err)
	var ids []id.DeviceID
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	if !slices.Equal(ids, []id.DeviceID{"A", "D", "X"}) {
		t.Fatalf("devices: %v", ids)
	}
	must(t, s.DeleteAllDevices(ctx, alice, "D"))
	devs, _ = s.ListDevices(ctx, alice)
	if len(devs) != 1 || devs[0].DeviceID != "D" {
		t.Fatalf("after delete all: %v", devs)
	}
	_, _, err = s.DeviceByAccessToken(ctx, hash("tokA2"))
	wantErr(t, err, storage.ErrNotFound)
}

func testRefresh(t *testing.T, s storage.Store) {
	ctx := context.Background()
	must(t, s.CreateAccount(ctx, storage.Account{UserID: alice}))
	d := newDevice(alice, "A", "a1")
	d.RefreshTokenHash = hash("r1")
	d.ExpiresTS = time.Now().Add(time.Hour).UnixMilli()
	_, err := s.CreateDevice(ctx, d)
	must(t, err)

	_, err = s.RefreshSession(ctx, hash("bad"), hash("x"), hash("y"), 0)
	wantErr(t, err, storage.ErrNotFound)
	dev, err := s.RefreshSession(ctx, hash("r1"), hash("a2"), hash("r2"), time.Now().Add(time.Hour).UnixMilli())
	must(t, err)
	if dev.DeviceID != "A" || dev.PrevSessionID == 0 {
		t.Fatalf("refreshed: %+v", dev)
	}
	// Both pairs work until the new one is used.
	_, _, err = s.DeviceByAccessToken(ctx, hash("a1"))
	must(t, err)
	// Reusing r1 before a2 is used replaces the unused a2.
	_, err = s.RefreshSession(ctx, hash("r1"), hash("a3"), hash("r3"), 0)
	must(t, err)
	_, _, err = s.DeviceByAccessToken(ctx, hash("a2"))
	wantErr(t, err, storage.ErrNotFound)
	dev3, _, err := s.DeviceByAccessToken(ctx, hash("a3"))
	must(t, err)
	must(t, s.DropPredecessor(ctx, dev3.SessionID))
	_, _, err = s.DeviceByAccessToken(ctx, hash("a1"))
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.RefreshSession(ctx, hash("r1"), hash("a4"), hash("r4"), 0)
	wantErr(t, err, storage.ErrNotFound)
	dev3, _, _ = s.DeviceByAccessToken(ctx, hash("a3"))
	if dev3.PrevSessionID != 0 {
		t.Fatalf("link not cleared: %+v", dev3)
	}
	// Using the new refresh token also revokes the pair before it.
	_, err = s.RefreshSession(ctx, hash("r3"), hash("a5"), hash("r5"), 0)
	must(t, err)
	_, err = s.RefreshSession(ctx, hash("r5"), hash("a6"), hash("r6"), 0)
	must(t, err)
	_, _, err = s.DeviceByAccessToken(ctx, hash("a3"))
	wantErr(t, err, storage.ErrNotFound)
	// Deleting the device revokes the refresh token.
	must(t, s.DeleteDevice(ctx, alice, "A"))
	_, err = s.RefreshSession(ctx, hash("r6"), hash("a7"), hash("r7"), 0)
	wantErr(t, err, storage.ErrNotFound)
}

func testLoginTokens(t *testing.T, s storage.Store) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	must(t, s.CreateLoginToken(ctx, hash("lt"), alice, now+60000))
	must(t, s.CreateLoginToken(ctx, hash("old"), alice, now-1))
	user, err := s.ConsumeLoginToken(ctx, hash("lt"), now)
	must(t, err)
	if user != alice {
		t.Fatalf("user %s", user)
	}
	_, err = s.ConsumeLoginToken(ctx, hash("lt"), now)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.ConsumeLoginToken(ctx, hash("old"), now)
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.CreateRegistrationNonce(ctx, "n1", now))
	must(t, s.CreateRegistrationNonce(ctx, "n2", now-120000))
	wantErr(t, s.CreateRegistrationNonce(ctx, "n1", now), storage.ErrConflict)
	must(t, s.ConsumeRegistrationNonce(ctx, "n1", now-60000))
	wantErr(t, s.ConsumeRegistrationNonce(ctx, "n1", now-60000), storage.ErrNotFound)
	wantErr(t, s.ConsumeRegistrationNonce(ctx, "n2", now-60000), storage.ErrNotFound)
}

func testUIA(t *testing.T, s storage.Store) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	must(t, s.CreateUIASession(ctx, storage.UIASession{ID: "s1", Op: "delete_devices", UserID: alice, CreatedTS: now}, now-3600000))
	wantErr(t, s.CreateUIASession(ctx, storage.UIASession{ID: "s1", Op: "x", CreatedTS: now}, 0), storage.ErrConflict)
	sess, err := s.GetUIASession(ctx, "s1")
	must(t, err)
	if sess.Op != "delete_devices" || sess.UserID != alice || len(sess.Completed) != 0 || sess.CreatedTS != now || sess.Params != "" {
		t.Fatalf("session: %+v", sess)
	}
	sess, err = s.CompleteUIAStage(ctx, "s1", "m.login.password", "")
	must(t, err)
	sess, err = s.CompleteUIAStage(ctx, "s1", "m.login.password", "")
	must(t, err)
	sess, err = s.CompleteUIAStage(ctx, "s1", "m.login.dummy", "tok")
	must(t, err)
	sess, _ = s.GetUIASession(ctx, "s1")
	if !slices.Equal(sess.Completed, []string{"m.login.password", "m.login.dummy"}) || sess.RegistrationToken != "tok" {
		t.Fatalf("completed: %+v", sess)
	}
	must(t, s.SetUIAParams(ctx, "s1", `{"a":1}`))
	if sess, _ = s.GetUIASession(ctx, "s1"); sess.Params != `{"a":1}` {
		t.Fatalf("params: %+v", sess)
	}
	wantErr(t, s.SetUIAParams(ctx, "nope", ""), storage.ErrNotFound)
	_, err = s.CompleteUIAStage(ctx, "nope", "m.login.dummy", "")
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteUIASession(ctx, "s1"))
	_, err = s.GetUIASession(ctx, "s1")
	wantErr(t, err, storage.ErrNotFound)

	// Creating a session expires old ones and gives back their reserved token uses.
	must(t, s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "t"}))
	must(t, s.ReserveRegistrationToken(ctx, "t", now))
	must(t, s.CreateUIASession(ctx, storage.UIASession{ID: "old", Op: "register", CreatedTS: now - 7200000, RegistrationToken: "t"}, 0))
	must(t, s.CreateUIASession(ctx, storage.UIASession{ID: "new", Op: "register", CreatedTS: now}, now-3600000))
	_, err = s.GetUIASession(ctx, "old")
	wantErr(t, err, storage.ErrNotFound)
	tok, _ := s.GetRegistrationToken(ctx, "t")
	if tok.Pending != 0 {
		t.Fatalf("pending not released: %+v", tok)
	}
}

func testRegistrationTokens(t *testing.T, s storage.Store) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	two := 2
	past, future := now-1000, now+60000
	must(t, s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "two", UsesAllowed: &two, ExpiryTime: &future}))
	must(t, s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "expired", ExpiryTime: &past}))
	must(t, s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "free"}))
	wantErr(t, s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "free"}), storage.ErrConflict)

	tok, err := s.GetRegistrationToken(ctx, "two")
	must(t, err)
	if tok.UsesAllowed == nil || *tok.UsesAllowed != 2 || tok.ExpiryTime == nil || *tok.ExpiryTime != future || !tok.Valid(now) {
		t.Fatalf("token: %+v", tok)
	}
	free, _ := s.GetRegistrationToken(ctx, "free")
	if free.UsesAllowed != nil || free.ExpiryTime != nil {
		t.Fatalf("unlimited token: %+v", free)
	}
	_, err = s.GetRegistrationToken(ctx, "nope")
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.ReserveRegistrationToken(ctx, "two", now))
	must(t, s.ReserveRegistrationToken(ctx, "two", now))
	wantErr(t, s.ReserveRegistrationToken(ctx, "two", now), storage.ErrNotFound)
	must(t, s.ReleaseRegistrationToken(ctx, "two"))
	must(t, s.ReserveRegistrationToken(ctx, "two", now))
	wantErr(t, s.ReserveRegistrationToken(ctx, "two", future+1), storage.ErrNotFound)
	wantErr(t, s.ReserveRegistrationToken(ctx, "expired", now), storage.ErrNotFound)
	wantErr(t, s.ReserveRegistrationToken(ctx, "nope", now), storage.ErrNotFound)
	for i := 0; i < 5; i++ {
		must(t, s.ReserveRegistrationToken(ctx, "free", now))
	}
}

func testProfiles(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.GetProfile(ctx, alice)
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.SetProfileField(ctx, alice, "displayname", json.RawMessage(`"A"`), 0), storage.ErrNotFound)
	must(t, s.CreateAccount(ctx, storage.Account{UserID: alice}))
	p, err := s.GetProfile(ctx, alice)
	must(t, err)
	if len(p) != 0 {
		t.Fatalf("empty profile: %v", p)
	}
	must(t, s.SetProfileField(ctx, alice, "displayname", json.RawMessage(`"A"`), 1000))
	must(t, s.SetProfileField(ctx, alice, "displayname", json.RawMessage(`"Alice"`), 1000))
	must(t, s.SetProfileField(ctx, alice, "org.example.x", json.RawMessage(`{"a":[1,2]}`), 1000))
	wantErr(t, s.SetProfileField(ctx, alice, "org.example.big", json.RawMessage(`"`+strings.Repeat("x", 120)+`"`), 100), storage.ErrTooLarge)
	p, _ = s.GetProfile(ctx, alice)
	if string(p["displayname"]) != `"Alice"` || string(p["org.example.x"]) != `{"a":[1,2]}` || len(p) != 2 {
		t.Fatalf("profile: %v", p)
	}
	must(t, s.DeleteProfileField(ctx, alice, "org.example.x"))
	must(t, s.DeleteProfileField(ctx, alice, "org.example.x"))
	p, _ = s.GetProfile(ctx, alice)
	if len(p) != 1 {
		t.Fatalf("after delete: %v", p)
	}
}
