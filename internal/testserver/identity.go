package testserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"
)

// IdentityServer is a minimal Matrix identity server (Identity Service API
// v2: hash_details, lookup, store-invite, pubkey/isvalid) on a loopback TLS
// listener with a certificate for "localhost" from a test CA, for testing
// third-party invites. Servers must trust the CA (federation.trusted_ca_file)
// and allow private addresses (federation.allow_private_ips).
type IdentityServer struct {
	// Name is the id_server value clients send (localhost:<port>).
	Name string
	// AccessToken is the only id_access_token it accepts.
	AccessToken string
	// PublicKey is its ed25519 key, URL-safe unpadded base64 (as Sydent does).
	PublicKey string
	priv      ed25519.PrivateKey
	srv       *httptest.Server

	mu sync.Mutex
	// bound maps "medium address" to a Matrix user ID.
	bound map[string]id.UserID
	// StoreInvites are the store-invite bodies received.
	StoreInvites []map[string]any
	pending      []PendingInvite
	revoked      bool
	// Requests counts the requests received.
	Requests int
}

// Revoke makes the identity server answer that its key is no longer valid.
func (is *IdentityServer) Revoke() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.revoked = true
}

// PendingInvite is an invitation stored with the identity server.
type PendingInvite struct {
	Medium, Address string
	RoomID          id.RoomID
	Sender          id.UserID
	Token           string
}

const identityPepper = "matrixrocks"

// NewIdentityServer starts an identity server whose certificate ca issues.
func NewIdentityServer(t testing.TB, ca *TestCA) *IdentityServer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &IdentityServer{AccessToken: "is-token-" + randHex(8), PublicKey: base64.RawURLEncoding.EncodeToString(pub), priv: priv,
		bound: map[string]id.UserID{}}
	is.srv = httptest.NewUnstartedServer(http.HandlerFunc(is.serve))
	is.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "localhost")}, MinVersion: tls.VersionTLS12}
	is.srv.StartTLS()
	t.Cleanup(is.srv.Close)
	is.Name = "localhost:" + is.srv.Listener.Addr().String()[strings.LastIndex(is.srv.Listener.Addr().String(), ":")+1:]
	return is
}

// Close stops the identity server (requests to it then fail).
func (is *IdentityServer) Close() { is.srv.Close() }

// Bind binds a third-party address to a Matrix user for lookups.
func (is *IdentityServer) Bind(medium, address string, mxid id.UserID) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.bound[medium+" "+address] = mxid
}

// Pending returns the invitations stored for an address.
func (is *IdentityServer) Pending(medium, address string) []PendingInvite {
	is.mu.Lock()
	defer is.mu.Unlock()
	var out []PendingInvite
	for _, p := range is.pending {
		if p.Medium == medium && p.Address == address {
			out = append(out, p)
		}
	}
	return out
}

// Sign returns obj with the identity server's signature added (ed25519:0).
func (is *IdentityServer) Sign(t testing.TB, obj map[string]any) map[string]any {
	t.Helper()
	b, err := canonicaljson.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(is.priv, b))
	out := map[string]any{}
	for k, v := range obj {
		out[k] = v
	}
	out["signatures"] = map[string]any{is.Name: map[string]any{"ed25519:0": sig}}
	return out
}

// Signed is the signed object accepting invitation p for mxid, as the
// identity server gives it to the invitee (third_party_signed, onbind's signed).
func (is *IdentityServer) Signed(t testing.TB, p PendingInvite, mxid id.UserID) map[string]any {
	return is.Sign(t, map[string]any{"mxid": mxid, "sender": p.Sender, "token": p.Token})
}

// OnBind binds (medium, address) to mxid and tells mxid's homeserver (at
// hsURL) about the pending invitations, as an identity server does once the
// user proves ownership of the address. It returns the HTTP status.
func (is *IdentityServer) OnBind(t testing.TB, hsURL, medium, address string, mxid id.UserID) int {
	t.Helper()
	is.Bind(medium, address, mxid)
	invites := []map[string]any{}
	for _, p := range is.Pending(medium, address) {
		invites = append(invites, map[string]any{"medium": medium, "address": address, "mxid": mxid, "room_id": p.RoomID,
			"sender": p.Sender, "signed": is.Signed(t, p, mxid)})
	}
	return is.PutOnBind(t, hsURL, map[string]any{"medium": medium, "address": address, "mxid": mxid, "invites": invites})
}

// PutOnBind sends body to hsURL's /_matrix/federation/v1/3pid/onbind.
func (is *IdentityServer) PutOnBind(t testing.TB, hsURL string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPut, hsURL+"/_matrix/federation/v1/3pid/onbind", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("onbind: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (is *IdentityServer) serve(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	is.Requests++
	is.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	path := strings.TrimPrefix(r.URL.Path, "/_matrix/identity/v2")
	if path == "/pubkey/isvalid" {
		is.mu.Lock()
		valid := !is.revoked && r.URL.Query().Get("public_key") == is.PublicKey
		is.mu.Unlock()
		reply(http.StatusOK, map[string]any{"valid": valid})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+is.AccessToken {
		reply(http.StatusUnauthorized, map[string]any{"errcode": "M_UNAUTHORIZED", "error": "unknown access token"})
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			reply(http.StatusBadRequest, map[string]any{"errcode": "M_NOT_JSON", "error": err.Error()})
			return
		}
	}
	switch {
	case path == "/hash_details" && r.Method == http.MethodGet:
		reply(http.StatusOK, map[string]any{"algorithms": []string{"none", "sha256"}, "lookup_pepper": identityPepper})
	case path == "/lookup" && r.Method == http.MethodPost:
		if body["pepper"] != identityPepper {
			reply(http.StatusBadRequest, map[string]any{"errcode": "M_INVALID_PEPPER", "error": "wrong pepper", "algorithm": "sha256", "lookup_pepper": identityPepper})
			return
		}
		mappings := map[string]any{}
		is.mu.Lock()
		for key, mxid := range is.bound {
			parts := strings.SplitN(key, " ", 2)
			var h string
			switch body["algorithm"] {
			case "sha256":
				sum := sha256.Sum256([]byte(parts[1] + " " + parts[0] + " " + identityPepper))
				h = base64.RawURLEncoding.EncodeToString(sum[:])
			case "none":
				h = parts[1] + " " + parts[0]
			}
			addrs, _ := body["addresses"].([]any)
			for _, a := range addrs {
				if a == h {
					mappings[h] = string(mxid)
				}
			}
		}
		is.mu.Unlock()
		reply(http.StatusOK, map[string]any{"mappings": mappings})
	case path == "/store-invite" && r.Method == http.MethodPost:
		medium, _ := body["medium"].(string)
		address, _ := body["address"].(string)
		roomID, _ := body["room_id"].(string)
		sender, _ := body["sender"].(string)
		if medium != "email" || address == "" || roomID == "" || sender == "" {
			reply(http.StatusBadRequest, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "medium must be email; address, room_id and sender are required"})
			return
		}
		token := randHex(16)
		is.mu.Lock()
		is.StoreInvites = append(is.StoreInvites, body)
		is.pending = append(is.pending, PendingInvite{Medium: medium, Address: address, RoomID: id.RoomID(roomID), Sender: id.UserID(sender), Token: token})
		is.mu.Unlock()
		display := address
		if at := strings.IndexByte(address, '@'); at > 0 {
			display = address[:1] + "...@" + address[at+1:at+2] + "..."
		}
		reply(http.StatusOK, map[string]any{"token": token, "display_name": display, "public_keys": []map[string]any{
			{"public_key": is.PublicKey, "key_validity_url": "https://" + is.Name + "/_matrix/identity/v2/pubkey/isvalid"},
		}})
	default:
		reply(http.StatusNotFound, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "unknown endpoint"})
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
