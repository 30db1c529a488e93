package keyserver_test

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// csKey builds a cross-signing key object for user.
func csKey(user id.UserID, usage string, k keyPair) map[string]any {
	return map[string]any{"user_id": user, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + k.pub: k.pub}}
}

type crossSigning struct {
	master, self, user keyPair
	masterObj          map[string]any
}

// uploadCrossSigning uploads fresh master, self-signing and user-signing keys for c.
func uploadCrossSigning(t *testing.T, c *testserver.Client, auth any) (*crossSigning, *testserver.Response) {
	t.Helper()
	cs := &crossSigning{master: newKeyPair(t), self: newKeyPair(t), user: newKeyPair(t)}
	cs.masterObj = csKey(c.UserID, "master", cs.master)
	body := map[string]any{
		"master_key":       cs.masterObj,
		"self_signing_key": sign(t, csKey(c.UserID, "self_signing", cs.self), c.UserID, cs.master.pub, cs.master),
		"user_signing_key": sign(t, csKey(c.UserID, "user_signing", cs.user), c.UserID, cs.master.pub, cs.master),
	}
	if auth != nil {
		body["auth"] = auth
	}
	return cs, c.Do(t, http.MethodPost, "keys/device_signing/upload", body)
}

func TestCrossSigning(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	aliceDK, _ := deviceKeys(t, alice)
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"device_keys": aliceDK})
	bobDevKey := uploadDeviceKeys(t, bob)

	// First upload needs no UIA.
	acs, res := uploadCrossSigning(t, alice, nil)
	if res.Status != 200 {
		t.Fatalf("first upload: %d %s", res.Status, res.Body)
	}
	q := bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "master_keys", string(alice.UserID), "keys", "ed25519:"+acs.master.pub) != acs.master.pub ||
		field(q.JSON, "self_signing_keys", string(alice.UserID)) == nil {
		t.Fatalf("query cross-signing: %s", q.Body)
	}
	if field(q.JSON, "user_signing_keys", string(alice.UserID)) != nil {
		t.Fatalf("user-signing key visible to another user: %s", q.Body)
	}
	q = alice.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "user_signing_keys", string(alice.UserID)) == nil {
		t.Fatalf("own user-signing key missing: %s", q.Body)
	}

	// Validation errors.
	bad := newKeyPair(t)
	wantErr(t, alice.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{
		"self_signing_key": sign(t, csKey(alice.UserID, "self_signing", newKeyPair(t)), alice.UserID, acs.master.pub, bad),
	}), 400, "M_INVALID_SIGNATURE")
	wantErr(t, alice.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{
		"self_signing_key": csKey(alice.UserID, "user_signing", newKeyPair(t)),
	}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{
		"master_key": csKey(bob.UserID, "master", newKeyPair(t)),
	}), 400, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{
		"self_signing_key": csKey(bob.UserID, "self_signing", newKeyPair(t)),
	}), 400, "M_MISSING_PARAM")

	// A key whose public key is one of the user's device IDs is refused.
	clash := newKeyPair(t)
	bobClash := login(t, srv, bob.UserID, clash.pub)
	wantErr(t, bobClash.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{"master_key": csKey(bob.UserID, "master", clash)}), 403, "M_FORBIDDEN")

	// Re-uploading the same master key needs no UIA; a new self-signing key does,
	// and so does a repeat of the self-signing key without the master key.
	alice.MustDo(t, http.MethodPost, "keys/device_signing/upload", map[string]any{"master_key": acs.masterObj})
	res = alice.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{
		"self_signing_key": sign(t, csKey(alice.UserID, "self_signing", newKeyPair(t)), alice.UserID, acs.master.pub, acs.master),
	})
	if res.Status != 401 || res.JSON["flows"] == nil {
		t.Fatalf("new self-signing key without auth: %d %s", res.Status, res.Body)
	}
	q = alice.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	storedSelf := field(q.JSON, "self_signing_keys", string(alice.UserID))
	if res = alice.Do(t, http.MethodPost, "keys/device_signing/upload", map[string]any{"self_signing_key": storedSelf}); res.Status != 401 {
		t.Fatalf("self-signing key without master, no auth: %d %s", res.Status, res.Body)
	}
	alice.MustDo(t, http.MethodPost, "keys/device_signing/upload", map[string]any{"master_key": acs.masterObj, "self_signing_key": storedSelf})

	// Signatures: Alice signs her device with her self-signing key.
	signedDev := sign(t, aliceDK, alice.UserID, acs.self.pub, acs.self)
	r := alice.MustDo(t, http.MethodPost, "keys/signatures/upload", map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): signedDev}})
	if f, _ := r.JSON["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("valid signature failed: %s", r.Body)
	}
	q = bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "device_keys", string(alice.UserID), string(alice.DeviceID), "signatures", string(alice.UserID), "ed25519:"+acs.self.pub) == nil {
		t.Fatalf("self-signing signature not in query: %s", q.Body)
	}

	// Per-key failures: a bad signature, a modified object, an unknown key,
	// and signing another user's master key without a user-signing key.
	bcs, res := uploadCrossSigning(t, bob, nil)
	if res.Status != 200 {
		t.Fatalf("bob cross-signing: %s", res.Body)
	}
	_ = bobDevKey
	forged := sign(t, aliceDK, alice.UserID, acs.self.pub, bad)
	modified := sign(t, map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID, "algorithms": []string{"x"}, "keys": map[string]string{}}, alice.UserID, acs.self.pub, acs.self)
	masterSignedByAlice := sign(t, bcs.masterObj, alice.UserID, acs.user.pub, acs.user)
	masterForged := sign(t, bcs.masterObj, alice.UserID, acs.user.pub, bad)
	r = alice.MustDo(t, http.MethodPost, "keys/signatures/upload", map[string]any{
		string(alice.UserID): map[string]any{string(alice.DeviceID): forged, "NOSUCHDEVICE": modified},
		string(bob.UserID):   map[string]any{bcs.master.pub: masterForged},
	})
	if field(r.JSON, "failures", string(alice.UserID), string(alice.DeviceID), "errcode") != "M_INVALID_SIGNATURE" ||
		field(r.JSON, "failures", string(alice.UserID), "NOSUCHDEVICE", "errcode") != "M_NOT_FOUND" ||
		field(r.JSON, "failures", string(bob.UserID), bcs.master.pub, "errcode") != "M_INVALID_SIGNATURE" {
		t.Fatalf("failures: %s", r.Body)
	}
	r = alice.MustDo(t, http.MethodPost, "keys/signatures/upload", map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): sign(t, modified, alice.UserID, acs.self.pub, acs.self)}})
	if field(r.JSON, "failures", string(alice.UserID), string(alice.DeviceID), "errcode") != "M_INVALID_SIGNATURE" {
		t.Fatalf("modified object accepted: %s", r.Body)
	}
	// Alice verifies Bob with her user-signing key: visible to Alice.
	r = alice.MustDo(t, http.MethodPost, "keys/signatures/upload", map[string]any{string(bob.UserID): map[string]any{bcs.master.pub: masterSignedByAlice}})
	if f, _ := r.JSON["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("user-signing signature failed: %s", r.Body)
	}
	q = alice.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(bob.UserID): []string{}}})
	if field(q.JSON, "master_keys", string(bob.UserID), "signatures", string(alice.UserID), "ed25519:"+acs.user.pub) == nil {
		t.Fatalf("user-signing signature not in query: %s", q.Body)
	}
	// It is private to Alice: a third user does not see it.
	carol := srv.Register(t, "carol")
	q = carol.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(bob.UserID): []string{}}})
	if field(q.JSON, "master_keys", string(bob.UserID)) == nil || field(q.JSON, "master_keys", string(bob.UserID), "signatures", string(alice.UserID)) != nil {
		t.Fatalf("third party sees alice's signature: %s", q.Body)
	}

	// Replacing the master key requires UIA: 401 with flows, then the password.
	_, res = uploadCrossSigning(t, alice, nil)
	if res.Status != 401 || res.JSON["flows"] == nil || res.JSON["session"] == nil {
		t.Fatalf("replace without auth: %d %s", res.Status, res.Body)
	}
	session := res.JSON["session"]
	_, res = uploadCrossSigning(t, alice, map[string]any{"type": "m.login.password", "session": session,
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong"})
	wantErr(t, res, 401, "M_FORBIDDEN")
	ncs, res := uploadCrossSigning(t, alice, map[string]any{"type": "m.login.password", "session": session,
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "password"})
	if res.Status != 200 {
		t.Fatalf("replace with auth: %d %s", res.Status, res.Body)
	}
	q = bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "master_keys", string(alice.UserID), "keys", "ed25519:"+ncs.master.pub) != ncs.master.pub {
		t.Fatalf("master key not replaced: %s", q.Body)
	}
	// Signatures by the old self-signing key are gone.
	if field(q.JSON, "device_keys", string(alice.UserID), string(alice.DeviceID), "signatures", string(alice.UserID), "ed25519:"+acs.self.pub) != nil {
		t.Fatalf("old signature survived master key replacement: %s", q.Body)
	}
}
