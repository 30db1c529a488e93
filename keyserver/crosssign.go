package keyserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// crossSigningKey is the part of a cross-signing key object the server checks.
type crossSigningKey struct {
	UserID     id.UserID                    `json:"user_id"`
	Usage      []string                     `json:"usage"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// parseCrossSigningKey validates a key of the given usage ("master",
// "self_signing", "user_signing") owned by user and returns its public key.
func parseCrossSigningKey(raw json.RawMessage, usage string, user id.UserID) (string, error) {
	var k crossSigningKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", httputil.BadJSON("%s key is malformed: %v", usage, err)
	}
	if k.UserID != user {
		return "", httputil.InvalidParam("%s key must belong to %s", usage, user)
	}
	if len(k.Usage) == 0 || !contains(k.Usage, usage) {
		return "", httputil.InvalidParam("%s key must have usage %q", usage, usage)
	}
	if len(k.Keys) != 1 {
		return "", httputil.InvalidParam("%s key must have exactly one key", usage)
	}
	for keyID, pub := range k.Keys {
		if keyID != "ed25519:"+pub || pub == "" {
			return "", httputil.InvalidParam("%s key ID must be ed25519:<public key>", usage)
		}
		return pub, nil
	}
	return "", nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// verifySignedBy checks that raw carries a valid signature by signer's
// ed25519 key keyName (a device ID or a public key).
func verifySignedBy(raw json.RawMessage, signer id.UserID, keyName, pub string) bool {
	ok, err := signatures.VerifySignatureJSON(raw, signer, keyName, id.Ed25519(pub))
	return err == nil && ok
}

// deviceSigningRequest is the body of POST /keys/device_signing/upload.
type deviceSigningRequest struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
	Auth           json.RawMessage `json:"auth"`
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// uploadCrossSigning handles POST /keys/device_signing/upload. The keys are
// validated first; then, once the user has a master key, any request other
// than an exact repeat of the stored keys requires user-interactive auth.
func (s *Server) uploadCrossSigning(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req deviceSigningRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	existing, err := s.store.CrossSigningKeys(ctx, []id.UserID{dev.UserID})
	if err != nil {
		return fmt.Errorf("load cross-signing keys: %w", err)
	}
	oldMaster := existing[dev.UserID]["master"]
	keys := map[string]json.RawMessage{}
	masterPub := ""
	if present(req.MasterKey) {
		if masterPub, err = parseCrossSigningKey(req.MasterKey, "master", dev.UserID); err != nil {
			return err
		}
		keys["master"] = req.MasterKey
	} else if oldMaster != nil {
		masterPub = firstPublicKey(oldMaster)
	}
	for _, sub := range []struct {
		usage string
		raw   json.RawMessage
	}{{"self_signing", req.SelfSigningKey}, {"user_signing", req.UserSigningKey}} {
		if !present(sub.raw) {
			continue
		}
		if _, err := parseCrossSigningKey(sub.raw, sub.usage, dev.UserID); err != nil {
			return err
		}
		if masterPub == "" {
			return httputil.MissingParam("a master key is required before the %s key", sub.usage)
		}
		if !verifySignedBy(sub.raw, dev.UserID, masterPub, masterPub) {
			return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidSignature, "%s key is not signed by the master key", sub.usage)
		}
		keys[sub.usage] = sub.raw
	}
	if len(keys) == 0 {
		return httputil.MissingParam("no keys to upload")
	}
	// A cross-signing public key must not be one of the user's device IDs:
	// both name keys in signatures and /keys/signatures/upload.
	devices, err := s.store.ListDevices(ctx, dev.UserID)
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	for _, raw := range keys {
		pub := firstPublicKey(raw)
		for _, d := range devices {
			if string(d.DeviceID) == pub {
				return httputil.Forbidden("Key ID in use")
			}
		}
	}
	// Once a master key exists, user-interactive auth is needed unless the
	// request repeats the existing master key and every other key it carries
	// is also the stored one (a client retry): spec v1.11+.
	if oldMaster != nil {
		same := present(req.MasterKey) && sameKey(oldMaster, req.MasterKey)
		for typ, raw := range keys {
			if old := existing[dev.UserID][typ]; old == nil || !sameKey(old, raw) {
				same = false
			}
		}
		if !same {
			if s.uia == nil {
				return httputil.Forbidden("replacing cross-signing keys is not supported")
			}
			if err := s.uia.RequireUIA(ctx, req.Auth, dev.UserID, "device_signing_upload"); err != nil {
				return err
			}
		}
	}
	if _, err := s.store.SetCrossSigningKeys(ctx, dev.UserID, keys); err != nil {
		return fmt.Errorf("store cross-signing keys: %w", err)
	}
	s.sendSigningKeyUpdate(ctx, dev.UserID, keys)
	if _, private := keys["user_signing"]; private && len(keys) == 1 && s.notifier != nil {
		s.notifier.WakeUsers(dev.UserID)
	} else {
		s.wakeDeviceListWatchers(ctx, dev.UserID)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// stripped is a key object without signatures and unsigned, canonicalised:
// two uploads of the same key compare equal whatever their signatures.
func stripped(raw json.RawMessage) []byte {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil
	}
	delete(obj, "signatures")
	delete(obj, "unsigned")
	b, err := canonicaljson.Marshal(obj)
	if err != nil {
		return nil
	}
	return b
}

func sameKey(a, b json.RawMessage) bool {
	sa, sb := stripped(a), stripped(b)
	return sa != nil && bytes.Equal(sa, sb)
}

func sigFailure(code, format string, a ...any) map[string]string {
	return map[string]string{"errcode": code, "error": fmt.Sprintf(format, a...)}
}

// uploadSignatures handles POST /keys/signatures/upload. Each signed object
// must be a key the server knows (unchanged apart from signatures), and the
// requester's signatures on it must verify with the requester's key:
//   - own device: the self-signing key;
//   - own master key: one of the requester's devices;
//   - another user's master key: the requester's user-signing key.
//
// Failures are reported per key; valid signatures are stored regardless.
func (s *Server) uploadSignatures(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req map[id.UserID]map[string]json.RawMessage
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	users := []id.UserID{dev.UserID}
	for u := range req {
		if u != dev.UserID && s.isLocal(u) {
			users = append(users, u)
		}
	}
	cs, err := s.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return fmt.Errorf("load cross-signing keys: %w", err)
	}
	own := cs[dev.UserID]
	ownSelf, ownUser := firstPublicKey(own["self_signing"]), firstPublicKey(own["user_signing"])
	ownMaster := firstPublicKey(own["master"])
	failures := map[id.UserID]map[string]any{}
	fail := func(u id.UserID, key string, f map[string]string) {
		if failures[u] == nil {
			failures[u] = map[string]any{}
		}
		failures[u][key] = f
	}
	var toStore []storage.KeySignature
	for target, objs := range req {
		if !s.isLocal(target) {
			for keyID := range objs {
				fail(target, keyID, sigFailure(httputil.CodeUnknown, "signing keys of remote users is not supported yet"))
			}
			continue
		}
		var devKeys map[id.DeviceID]storage.DeviceKey
		if target == dev.UserID {
			ids := make([]id.DeviceID, 0, len(objs))
			for keyID := range objs {
				ids = append(ids, id.DeviceID(keyID))
			}
			dk, err := s.store.DeviceKeys(ctx, map[id.UserID][]id.DeviceID{target: ids})
			if err != nil {
				return fmt.Errorf("load device keys: %w", err)
			}
			devKeys = dk[target]
		}
		for keyID, obj := range objs {
			var stored json.RawMessage
			var signerKey string // public key the requester must have signed with ("" = a device key)
			switch {
			case target == dev.UserID && devKeys[id.DeviceID(keyID)].JSON != nil:
				stored, signerKey = devKeys[id.DeviceID(keyID)].JSON, ownSelf
				if ownSelf == "" {
					fail(target, keyID, sigFailure(httputil.CodeInvalidSignature, "no self-signing key uploaded"))
					continue
				}
			case target == dev.UserID && keyID == ownMaster && ownMaster != "":
				stored = own["master"]
			case target != dev.UserID && keyID == firstPublicKey(cs[target]["master"]) && keyID != "":
				stored, signerKey = cs[target]["master"], ownUser
				if ownUser == "" {
					fail(target, keyID, sigFailure(httputil.CodeInvalidSignature, "no user-signing key uploaded"))
					continue
				}
			default:
				fail(target, keyID, sigFailure(httputil.CodeNotFound, "unknown key %s of %s", keyID, target))
				continue
			}
			if !sameKey(stored, obj) {
				fail(target, keyID, sigFailure(httputil.CodeInvalidSignature, "signed object does not match the stored key"))
				continue
			}
			found, err := s.checkUploadedSignatures(ctx, dev.UserID, obj, signerKey, target, keyID)
			if err != nil {
				return err
			}
			if len(found) == 0 {
				fail(target, keyID, sigFailure(httputil.CodeInvalidSignature, "no valid signature by %s", dev.UserID))
				continue
			}
			toStore = append(toStore, found...)
		}
	}
	if len(toStore) > 0 {
		if _, err := s.store.AddKeySignatures(ctx, toStore); err != nil {
			return fmt.Errorf("store signatures: %w", err)
		}
		seen := map[id.UserID]bool{}
		var signed []id.DeviceID // the requester's own keys with new signatures
		for _, ks := range toStore {
			if ks.SignerUser == ks.TargetUser && !slices.Contains(signed, id.DeviceID(ks.TargetKey)) {
				signed = append(signed, id.DeviceID(ks.TargetKey))
			}
			switch {
			case ks.SignerUser != ks.TargetUser:
				if s.notifier != nil {
					s.notifier.WakeUsers(ks.SignerUser)
				}
			case !seen[ks.TargetUser]:
				seen[ks.TargetUser] = true
				s.wakeDeviceListWatchers(ctx, ks.TargetUser)
			}
		}
		// Other servers learn of the newly signed devices (a signed master
		// key is not a device and is skipped).
		s.DevicesChanged(ctx, dev.UserID, signed, false)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"failures": failures})
}

// checkUploadedSignatures returns the requester's valid signatures on obj.
// With signerKey set only that cross-signing key counts; otherwise the
// signature must come from one of the requester's devices.
func (s *Server) checkUploadedSignatures(ctx context.Context, signer id.UserID, obj json.RawMessage, signerKey string, target id.UserID, keyID string) ([]storage.KeySignature, error) {
	var body struct {
		Signatures map[id.UserID]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(obj, &body); err != nil {
		return nil, nil
	}
	var out []storage.KeySignature
	var devKeys map[id.DeviceID]storage.DeviceKey
	for sigKeyID, sig := range body.Signatures[signer] {
		alg, name, _ := strings.Cut(sigKeyID, ":")
		if alg != "ed25519" {
			continue
		}
		pub := ""
		if signerKey != "" {
			if name != signerKey {
				continue
			}
			pub = signerKey
		} else {
			if devKeys == nil {
				dk, err := s.store.DeviceKeys(ctx, map[id.UserID][]id.DeviceID{signer: nil})
				if err != nil {
					return nil, fmt.Errorf("load device keys: %w", err)
				}
				devKeys = dk[signer]
			}
			var d deviceKeysBody
			if raw := devKeys[id.DeviceID(name)].JSON; raw == nil || json.Unmarshal(raw, &d) != nil {
				continue
			}
			pub = d.Keys["ed25519:"+name]
		}
		if pub != "" && verifySignedBy(obj, signer, name, pub) {
			out = append(out, storage.KeySignature{TargetUser: target, TargetKey: keyID, SignerUser: signer, SignerKey: sigKeyID, Signature: sig})
		}
	}
	return out, nil
}
