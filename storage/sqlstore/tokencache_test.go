package sqlstore_test

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
	"parley/storage/sqlstore"
)

// TestTokenLookupAfterChanges looks every token up first (so that SQLite's
// token cache holds it), then changes tokens, devices and accounts in each
// way the store offers, and checks that the next lookup sees the change.
func TestTokenLookupAfterChanges(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		user := id.UserID("@tok:hs")
		if err := s.CreateAccount(ctx, storage.Account{UserID: user, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		n := 0
		newDevice := func(dev id.DeviceID, refresh []byte) []byte {
			t.Helper()
			n++
			hash := []byte{byte(n), 'a', 'c', 'c', 'e', 's', 's'}
			if _, err := s.CreateDevice(ctx, storage.NewDevice{UserID: user, DeviceID: dev, AccessTokenHash: hash, RefreshTokenHash: refresh}); err != nil {
				t.Fatal(err)
			}
			return hash
		}
		lookup := func(hash []byte) (*storage.Device, error) {
			t.Helper()
			d, _, err := s.DeviceByAccessToken(ctx, hash)
			return d, err
		}
		mustWork := func(hash []byte) *storage.Device {
			t.Helper()
			d, err := lookup(hash)
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			return d
		}
		mustFail := func(what string, hash []byte) {
			t.Helper()
			if _, err := lookup(hash); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s: token still works (%v)", what, err)
			}
		}

		a := newDevice("A", nil)
		mustWork(a)
		if err := s.DeleteDevice(ctx, user, "A"); err != nil {
			t.Fatal(err)
		}
		mustFail("delete device", a)

		b, c := newDevice("B", nil), newDevice("C", nil)
		mustWork(b)
		mustWork(c)
		if err := s.DeleteDevices(ctx, user, []id.DeviceID{"B"}); err != nil {
			t.Fatal(err)
		}
		mustFail("delete devices", b)
		mustWork(c)

		// A new login with the same device ID replaces the session.
		c2 := newDevice("C", nil)
		mustFail("login replacing the device", c)
		mustWork(c2)

		if err := s.SetAccountAdmin(ctx, user, true); err != nil {
			t.Fatal(err)
		}
		if d := mustWork(c2); !d.IsAdmin {
			t.Fatal("admin flag not seen")
		}

		d := newDevice("D", nil)
		mustWork(d)
		if err := s.SetPassword(ctx, user, "y", true, "D"); err != nil {
			t.Fatal(err)
		}
		mustFail("password change logging out other devices", c2)
		mustWork(d)

		// Refreshing: the new token's first use drops the old one.
		e := newDevice("E", []byte("refresh-e"))
		mustWork(e)
		nd, err := s.RefreshSession(ctx, []byte("refresh-e"), []byte("access-e2"), []byte("refresh-e2"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DropPredecessor(ctx, nd.SessionID); err != nil {
			t.Fatal(err)
		}
		mustFail("refreshed token", e)
		mustWork([]byte("access-e2"))

		if err := s.DeleteAllDevices(ctx, user, ""); err != nil {
			t.Fatal(err)
		}
		mustFail("delete all devices", d)

		f := newDevice("F", nil)
		mustWork(f)
		if err := s.DeactivateAccount(ctx, user, false); err != nil {
			t.Fatal(err)
		}
		mustFail("deactivation", f)
	})
}
