package keyserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// uploadKeysRequest is the body of POST /keys/upload.
type uploadKeysRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeysBody is the part of a device_keys object the server checks.
type deviceKeysBody struct {
	UserID     id.UserID                    `json:"user_id"`
	DeviceID   id.DeviceID                  `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// checkDeviceKeys validates an uploaded device_keys object: it must describe
// the requesting device and carry algorithms, keys and signatures (400
// M_BAD_JSON otherwise, as Synapse answers). With verify it must also be
// signed by the device's own ed25519 key (400 M_INVALID_SIGNATURE).
func checkDeviceKeys(raw json.RawMessage, dev *authn.Device, verify bool) error {
	var dk deviceKeysBody
	if err := json.Unmarshal(raw, &dk); err != nil {
		return httputil.BadJSON("device_keys is malformed: %v", err)
	}
	if dk.UserID != dev.UserID || dk.DeviceID != dev.DeviceID {
		return httputil.InvalidParam("device_keys must be for the requesting device (%s, %s)", dev.UserID, dev.DeviceID)
	}
	if len(dk.Algorithms) == 0 || len(dk.Keys) == 0 || dk.Signatures == nil {
		return httputil.BadJSON("device_keys needs algorithms, keys and signatures")
	}
	for keyID, k := range dk.Keys {
		if !strings.Contains(keyID, ":") || k == "" {
			return httputil.BadJSON("invalid key ID %q in device_keys.keys", keyID)
		}
	}
	if !verify {
		return nil
	}
	edKey := dk.Keys["ed25519:"+string(dev.DeviceID)]
	if edKey == "" {
		return httputil.BadJSON("device_keys.keys must contain ed25519:%s", dev.DeviceID)
	}
	ok, err := signatures.VerifySignatureJSON(raw, dev.UserID, string(dev.DeviceID), id.Ed25519(edKey))
	if err != nil || !ok {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidSignature, "device_keys is not signed by the device's ed25519 key")
	}
	return nil
}

func checkKeyMap(name string, m map[string]json.RawMessage) error {
	for keyID, k := range m {
		alg, kid, ok := strings.Cut(keyID, ":")
		if !ok || alg == "" || kid == "" {
			return httputil.BadJSON("invalid key ID %q in %s", keyID, name)
		}
		if len(k) == 0 || (k[0] != '{' && k[0] != '"') {
			return httputil.BadJSON("key %q in %s must be an object or a string", keyID, name)
		}
	}
	return nil
}

// oneFallbackPerAlgorithm enforces the spec's "at most one key per
// algorithm" for fallback_keys.
func oneFallbackPerAlgorithm(m map[string]json.RawMessage) error {
	seen := map[string]bool{}
	for keyID := range m {
		alg, _, _ := strings.Cut(keyID, ":")
		if seen[alg] {
			return httputil.InvalidParam("more than one fallback key for %s", alg)
		}
		seen[alg] = true
	}
	return nil
}

// countsWithDefault adds signed_curve25519: 0 when absent, as clients read it
// to decide whether to upload more keys.
func countsWithDefault(c map[string]int) map[string]int {
	if c == nil {
		c = map[string]int{}
	}
	if _, ok := c[string(id.KeyAlgorithmSignedCurve25519)]; !ok {
		c[string(id.KeyAlgorithmSignedCurve25519)] = 0
	}
	return c
}

// uploadKeys handles POST /keys/upload.
func (s *Server) uploadKeys(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if dev.DeviceID == "" {
		// An application service acting without asserting a device_id.
		return httputil.MissingParam("uploading keys needs a device: assert one with device_id")
	}
	var req uploadKeysRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	up := storage.KeyUpload{UserID: dev.UserID, DeviceID: dev.DeviceID, OneTimeKeys: req.OneTimeKeys, FallbackKeys: req.FallbackKeys}
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		if err := checkDeviceKeys(req.DeviceKeys, dev, s.cfg.E2EE.VerifyDeviceKeySignatures); err != nil {
			return err
		}
		up.DeviceKeys = req.DeviceKeys
	}
	if err := checkKeyMap("one_time_keys", req.OneTimeKeys); err != nil {
		return err
	}
	if err := checkKeyMap("fallback_keys", req.FallbackKeys); err != nil {
		return err
	}
	if err := oneFallbackPerAlgorithm(req.FallbackKeys); err != nil {
		return err
	}
	counts, dlPos, err := s.store.UploadKeys(r.Context(), up)
	if err != nil {
		return fmt.Errorf("upload keys: %w", err)
	}
	if dlPos > 0 {
		s.wakeDeviceListWatchers(r.Context(), dev.UserID)
		s.sendDeviceListUpdate(r.Context(), dev.UserID, dev.DeviceID, dlPos, up.DeviceKeys)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"one_time_key_counts": countsWithDefault(counts)})
}

// queryKeysRequest is the body of POST /keys/query.
type queryKeysRequest struct {
	DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	Timeout    *int64                      `json:"timeout"`
}

// queryKeys handles POST /keys/query.
func (s *Server) queryKeys(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req queryKeysRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return httputil.MissingParam("device_keys is required")
	}
	ctx := r.Context()
	resp := map[string]any{}
	deviceKeys := map[id.UserID]map[id.DeviceID]json.RawMessage{}
	failures := map[string]any{}
	masterKeys := map[id.UserID]json.RawMessage{}
	selfSigning := map[id.UserID]json.RawMessage{}
	userSigning := map[id.UserID]json.RawMessage{}
	local := map[id.UserID][]id.DeviceID{}
	for user, devices := range req.DeviceKeys {
		if _, _, err := user.Parse(); err != nil {
			continue
		}
		if !s.isLocal(user) {
			if s.fed == nil {
				failures[user.Homeserver()] = map[string]any{"status": 503, "message": "federation is not available"}
			}
			continue
		}
		local[user] = devices
	}
	if s.fed != nil {
		for server, q := range remoteByServer(s, req.DeviceKeys) {
			rk, err := s.fed.QueryKeys(ctx, server, q)
			if err != nil {
				failures[server] = map[string]any{"status": 503, "message": err.Error()}
				continue
			}
			for u, devs := range rk.DeviceKeys {
				if u.Homeserver() == server {
					deviceKeys[u] = devs
				}
			}
			for u, k := range rk.MasterKeys {
				if u.Homeserver() == server {
					masterKeys[u] = k
				}
			}
			for u, k := range rk.SelfSigningKeys {
				if u.Homeserver() == server {
					selfSigning[u] = k
				}
			}
		}
	}
	lk, err := s.LocalKeys(ctx, local, dev.UserID)
	if err != nil {
		return err
	}
	for user, devs := range lk.Devices {
		deviceKeys[user] = devs
	}
	for user, cs := range lk.CrossSigning {
		for typ, k := range cs {
			switch typ {
			case "master":
				masterKeys[user] = k
			case "self_signing":
				selfSigning[user] = k
			case "user_signing":
				userSigning[user] = k
			}
		}
	}
	resp["device_keys"] = deviceKeys
	resp["failures"] = failures
	resp["master_keys"] = masterKeys
	resp["self_signing_keys"] = selfSigning
	resp["user_signing_keys"] = userSigning
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// Keys are local users' published keys, with the signatures a requester
// may see merged in (LocalKeys).
type Keys struct {
	// Devices are device keys, with unsigned.device_display_name.
	Devices map[id.UserID]map[id.DeviceID]json.RawMessage
	// CrossSigning are cross-signing keys by type (master, self_signing, and
	// user_signing for the requester's own user only).
	CrossSigning map[id.UserID]map[string]json.RawMessage
}

// LocalKeys returns the device keys (all of a user's for an empty device
// list) and cross-signing keys of local users, with the signatures uploaded
// by their owners and those requester made (requester "": another server,
// which sees the owners' signatures only).
func (s *Server) LocalKeys(ctx context.Context, query map[id.UserID][]id.DeviceID, requester id.UserID) (*Keys, error) {
	users := make([]id.UserID, 0, len(query))
	for u := range query {
		users = append(users, u)
	}
	keys, err := s.store.DeviceKeys(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("query device keys: %w", err)
	}
	sigs, err := s.store.KeySignatures(ctx, users)
	if err != nil {
		return nil, fmt.Errorf("query signatures: %w", err)
	}
	csKeys, err := s.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return nil, fmt.Errorf("query cross-signing keys: %w", err)
	}
	byTarget := map[sigTarget][]storage.KeySignature{}
	for _, ks := range sigs {
		t := sigTarget{ks.TargetUser, ks.TargetKey}
		byTarget[t] = append(byTarget[t], ks)
	}
	out := &Keys{Devices: map[id.UserID]map[id.DeviceID]json.RawMessage{}, CrossSigning: map[id.UserID]map[string]json.RawMessage{}}
	for _, user := range users {
		devs := map[id.DeviceID]json.RawMessage{}
		for device, dk := range keys[user] {
			merged, err := decorateKey(dk.JSON, visibleSignatures(byTarget[sigTarget{user, string(device)}], user, requester), true, dk.DisplayName)
			if err != nil {
				return nil, fmt.Errorf("device keys of %s %s: %w", user, device, err)
			}
			devs[device] = merged
		}
		out.Devices[user] = devs
		cs := map[string]json.RawMessage{}
		for typ, raw := range csKeys[user] {
			if typ == "user_signing" && user != requester {
				continue
			}
			merged, err := decorateKey(raw, visibleSignatures(byTarget[sigTarget{user, firstPublicKey(raw)}], user, requester), false, "")
			if err != nil {
				return nil, fmt.Errorf("cross-signing key of %s: %w", user, err)
			}
			cs[typ] = merged
		}
		if len(cs) > 0 {
			out.CrossSigning[user] = cs
		}
	}
	return out, nil
}

// PublishedKeys is LocalKeys as other servers see them (federation user
// keys queries and device lists).
func (s *Server) PublishedKeys(ctx context.Context, query map[id.UserID][]id.DeviceID) (map[id.UserID]map[id.DeviceID]json.RawMessage, map[id.UserID]map[string]json.RawMessage, error) {
	lk, err := s.LocalKeys(ctx, query, "")
	if err != nil {
		return nil, nil, err
	}
	return lk.Devices, lk.CrossSigning, nil
}

// sigTarget is a signed key: its owner and key ID.
type sigTarget struct {
	user id.UserID
	key  string
}

// visibleSignatures filters the uploaded signatures on one key of user to
// those the requester may see: signatures by the key's owner, and those the
// requester made. Signatures by third parties are private to the signer.
func visibleSignatures(sigs []storage.KeySignature, user, requester id.UserID) []storage.KeySignature {
	var out []storage.KeySignature
	for _, ks := range sigs {
		if ks.SignerUser == user || ks.SignerUser == requester {
			out = append(out, ks)
		}
	}
	return out
}

// firstPublicKey returns the public key of a cross-signing key object.
func firstPublicKey(raw json.RawMessage) string {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	_ = json.Unmarshal(raw, &k)
	for _, v := range k.Keys {
		return v
	}
	return ""
}

// decorateKey merges extra signatures into a key object. For device keys
// (device true) it also sets unsigned, always present as Synapse sends it,
// with device_display_name when the device has a name.
func decorateKey(raw json.RawMessage, extra []storage.KeySignature, device bool, displayName string) (json.RawMessage, error) {
	if len(extra) == 0 && !device {
		return raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		sigs := map[id.UserID]map[string]string{}
		if s, ok := obj["signatures"]; ok {
			if err := json.Unmarshal(s, &sigs); err != nil {
				return nil, err
			}
		}
		for _, ks := range extra {
			if sigs[ks.SignerUser] == nil {
				sigs[ks.SignerUser] = map[string]string{}
			}
			sigs[ks.SignerUser][ks.SignerKey] = ks.Signature
		}
		b, err := json.Marshal(sigs)
		if err != nil {
			return nil, err
		}
		obj["signatures"] = b
	}
	if device {
		unsigned := map[string]json.RawMessage{}
		if u, ok := obj["unsigned"]; ok {
			_ = json.Unmarshal(u, &unsigned)
		}
		if displayName != "" {
			b, _ := json.Marshal(displayName)
			unsigned["device_display_name"] = b
		}
		ub, err := json.Marshal(unsigned)
		if err != nil {
			return nil, err
		}
		obj["unsigned"] = ub
	}
	return json.Marshal(obj)
}

// claimKeysRequest is the body of POST /keys/claim.
type claimKeysRequest struct {
	OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
	Timeout     *int64                               `json:"timeout"`
}

// claimKeys handles POST /keys/claim.
func (s *Server) claimKeys(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req claimKeysRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return httputil.MissingParam("one_time_keys is required")
	}
	failures := map[string]any{}
	local := map[id.UserID]map[id.DeviceID]string{}
	for user, devices := range req.OneTimeKeys {
		if _, _, err := user.Parse(); err != nil {
			continue
		}
		if !s.isLocal(user) {
			if s.fed == nil {
				failures[user.Homeserver()] = map[string]any{"status": 503, "message": "federation is not available"}
			}
			continue
		}
		local[user] = devices
	}
	remote := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	if s.fed != nil {
		for server, q := range remoteByServer(s, req.OneTimeKeys) {
			got, err := s.fed.ClaimKeys(r.Context(), server, q)
			if err != nil {
				failures[server] = map[string]any{"status": 503, "message": err.Error()}
				continue
			}
			for u, devs := range got {
				if u.Homeserver() == server {
					remote[u] = devs
				}
			}
		}
	}
	claimed, err := s.store.ClaimKeys(r.Context(), local)
	if err != nil {
		return fmt.Errorf("claim keys: %w", err)
	}
	out := remote
	for user, devices := range claimed {
		out[user] = map[id.DeviceID]map[string]json.RawMessage{}
		for device, k := range devices {
			out[user][device] = map[string]json.RawMessage{k.KeyID: k.Key}
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"one_time_keys": out, "failures": failures})
}
