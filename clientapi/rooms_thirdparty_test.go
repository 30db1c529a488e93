package clientapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/testserver"
)

// newThirdPartyServer starts a homeserver and an identity server it trusts.
func newThirdPartyServer(t *testing.T) (*testserver.Server, *testserver.IdentityServer) {
	t.Helper()
	ca := testserver.NewTestCA(t)
	srv := testserver.New(t, func(c *config.Config) {
		c.Federation.TrustedCAFile = ca.File
		c.Federation.AllowPrivateIPs = true
	})
	return srv, testserver.NewIdentityServer(t, ca)
}

func invite3PID(is *testserver.IdentityServer, address string) map[string]any {
	return map[string]any{"id_server": is.Name, "id_access_token": is.AccessToken, "medium": "email", "address": address}
}

// thirdPartyInvites returns the room's m.room.third_party_invite contents by token.
func thirdPartyInvites(t *testing.T, c *testserver.Client, room string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	var state []map[string]any
	if err := json.Unmarshal(c.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil).Body, &state); err != nil {
		t.Fatal(err)
	}
	for _, e := range state {
		if e["type"] == "m.room.third_party_invite" {
			out[e["state_key"].(string)] = e["content"].(map[string]any)
		}
	}
	return out
}

func memberEvent(t *testing.T, c *testserver.Client, room string, user id.UserID) *testserver.Response {
	t.Helper()
	return c.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, string(user)), nil)
}

func TestThirdPartyInvite(t *testing.T) {
	srv, is := newThirdPartyServer(t)
	alice := srv.Register(t, "alice")
	alice.MustDo(t, http.MethodPut, "profile/"+string(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice"})
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Plans"})
	path := testserver.Sprintf("rooms/%s/invite", room)

	// A bound address: an ordinary invite of the user the identity server names.
	is.Bind("email", "bob@example.org", bob.UserID)
	alice.MustDo(t, http.MethodPost, path, invite3PID(is, "bob@example.org"))
	if m := membershipOf(t, alice, room, string(bob.UserID)); m != "invite" {
		t.Fatalf("bound address: bob is %q", m)
	}
	if len(is.StoreInvites) != 0 {
		t.Fatalf("store-invite called for a bound address: %v", is.StoreInvites)
	}

	// An unbound address: the invitation is stored with the identity server
	// and the room gets an m.room.third_party_invite.
	alice.MustDo(t, http.MethodPost, path, invite3PID(is, "carol@example.org"))
	if len(is.StoreInvites) != 1 {
		t.Fatalf("store-invite calls: %v", is.StoreInvites)
	}
	si := is.StoreInvites[0]
	if si["room_id"] != room || si["sender"] != string(alice.UserID) || si["address"] != "carol@example.org" || si["medium"] != "email" ||
		si["room_name"] != "Plans" || si["sender_display_name"] != "Alice" || si["room_join_rules"] != "invite" {
		t.Fatalf("store-invite body: %v", si)
	}
	pending := is.Pending("email", "carol@example.org")
	tpis := thirdPartyInvites(t, alice, room)
	tpi, ok := tpis[pending[0].Token]
	if len(tpis) != 1 || !ok {
		t.Fatalf("third-party invite events: %v (token %s)", tpis, pending[0].Token)
	}
	keys, _ := tpi["public_keys"].([]any)
	if tpi["display_name"] != "c...@e..." || tpi["public_key"] != is.PublicKey || len(keys) != 1 || tpi["key_validity_url"] == "" {
		t.Fatalf("third-party invite content: %v", tpi)
	}

	// Carol registers and binds the address: the identity server tells the
	// homeserver, which issues the invite; the auth rules check the signature.
	carol := srv.Register(t, "carol")
	if status := is.OnBind(t, srv.URL, "email", "carol@example.org", carol.UserID); status != http.StatusOK {
		t.Fatalf("onbind: %d", status)
	}
	res := memberEvent(t, alice, room, carol.UserID)
	if res.Status != http.StatusOK || res.JSON["membership"] != "invite" {
		t.Fatalf("carol after onbind: %d %s", res.Status, res.Body)
	}
	tp, _ := res.JSON["third_party_invite"].(map[string]any)
	if tp["display_name"] != "c...@e..." || tp["signed"].(map[string]any)["token"] != pending[0].Token {
		t.Fatalf("carol's invite content: %s", res.Body)
	}
	member(t, carol, room, "join", nil)
	if m := membershipOf(t, alice, room, string(carol.UserID)); m != "join" {
		t.Fatalf("carol joined: %q", m)
	}

	// A forged onbind (signed by another key, or for a token the room does
	// not have) invites nobody.
	alice.MustDo(t, http.MethodPost, path, invite3PID(is, "dave@example.org"))
	dave := srv.Register(t, "dave")
	p := is.Pending("email", "dave@example.org")[0]
	ca2 := testserver.NewTestCA(t)
	forger := testserver.NewIdentityServer(t, ca2)
	for _, signed := range []map[string]any{
		forger.Signed(t, p, dave.UserID),
		is.Signed(t, testserver.PendingInvite{RoomID: p.RoomID, Sender: p.Sender, Token: "not-the-token"}, dave.UserID),
	} {
		status := is.PutOnBind(t, srv.URL, map[string]any{"medium": "email", "address": "dave@example.org", "mxid": dave.UserID,
			"invites": []any{map[string]any{"medium": "email", "address": "dave@example.org", "mxid": dave.UserID, "room_id": room, "sender": p.Sender, "signed": signed}}})
		if status != http.StatusForbidden {
			t.Fatalf("forged onbind: %d", status)
		}
		if res := memberEvent(t, alice, room, dave.UserID); res.Status != http.StatusNotFound {
			t.Fatalf("forged third-party invite accepted: %d %s", res.Status, res.Body)
		}
	}
	if status := is.PutOnBind(t, srv.URL, map[string]any{"mxid": "@dave:elsewhere.test", "invites": []any{}}); status != http.StatusBadRequest {
		t.Fatalf("onbind for a user of another server: %d", status)
	}

	// Joining with third_party_signed: the invite is exchanged, then dave joins.
	forged := forger.Signed(t, p, dave.UserID)
	wantErr(t, dave.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{"third_party_signed": forged}), http.StatusForbidden, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{"third_party_signed": is.Signed(t, p, dave.UserID)}), http.StatusForbidden, "M_FORBIDDEN")
	if res := memberEvent(t, alice, room, dave.UserID); res.Status != http.StatusNotFound {
		t.Fatalf("dave after refused joins: %d %s", res.Status, res.Body)
	}
	dave.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{"third_party_signed": is.Signed(t, p, dave.UserID)})
	if m := membershipOf(t, alice, room, string(dave.UserID)); m != "join" {
		t.Fatalf("dave after joining with third_party_signed: %q", m)
	}

	// Errors.
	inv := invite3PID(is, "erin@example.org")
	delete(inv, "id_access_token")
	wantErr(t, alice.Do(t, http.MethodPost, path, inv), http.StatusBadRequest, "M_MISSING_PARAM")
	inv = invite3PID(is, "erin@example.org")
	inv["id_access_token"] = "wrong"
	wantErr(t, alice.Do(t, http.MethodPost, path, inv), http.StatusForbidden, "M_FORBIDDEN")
	inv = invite3PID(is, "erin@example.org")
	inv["medium"] = "msisdn"
	wantErr(t, alice.Do(t, http.MethodPost, path, inv), http.StatusBadRequest, "M_UNRECOGNIZED")
	inv = invite3PID(is, "erin@example.org")
	inv["id_server"] = "bad server"
	wantErr(t, alice.Do(t, http.MethodPost, path, inv), http.StatusBadRequest, "M_INVALID_PARAM")
	// Only members who may invite; the identity server is not even asked.
	before := is.Requests
	outsider := srv.Register(t, "outsider")
	wantErr(t, outsider.Do(t, http.MethodPost, path, invite3PID(is, "erin@example.org")), http.StatusForbidden, "M_FORBIDDEN")
	if is.Requests != before {
		t.Fatal("the identity server was asked on behalf of a user who may not invite")
	}
	wantErr(t, alice.Do(t, http.MethodPost, path, map[string]any{}), http.StatusBadRequest, "M_MISSING_PARAM")

	// A key the identity server revoked, or an identity server that cannot
	// be reached to confirm the key, invites nobody.
	alice.MustDo(t, http.MethodPost, path, invite3PID(is, "frank@example.org"))
	frank := srv.Register(t, "frank")
	pf := is.Pending("email", "frank@example.org")[0]
	is.Revoke()
	wantErr(t, frank.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{"third_party_signed": is.Signed(t, pf, frank.UserID)}), http.StatusForbidden, "M_FORBIDDEN")
	if status := is.OnBind(t, srv.URL, "email", "frank@example.org", frank.UserID); status != http.StatusForbidden {
		t.Fatalf("onbind with a revoked key: %d", status)
	}
	if res := memberEvent(t, alice, room, frank.UserID); res.Status != http.StatusNotFound {
		t.Fatalf("invite with a revoked key: %d %s", res.Status, res.Body)
	}
	signedForFrank := is.Signed(t, pf, frank.UserID)
	is.Close()
	wantErr(t, frank.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{"third_party_signed": signedForFrank}), http.StatusForbidden, "M_FORBIDDEN")
}

func TestCreateRoomInvite3PID(t *testing.T) {
	srv, is := newThirdPartyServer(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	is.Bind("email", "bob@example.org", bob.UserID)
	room := createRoom(t, alice, map[string]any{"preset": "trusted_private_chat", "name": "Team", "invite_3pid": []any{
		invite3PID(is, "bob@example.org"), invite3PID(is, "carol@example.org"),
	}})
	if m := membershipOf(t, alice, room, string(bob.UserID)); m != "invite" {
		t.Fatalf("bound invitee: %q", m)
	}
	pending := is.Pending("email", "carol@example.org")
	if len(pending) != 1 || pending[0].RoomID != id.RoomID(room) || is.StoreInvites[0]["room_name"] != "Team" {
		t.Fatalf("store-invite: %v %v", pending, is.StoreInvites)
	}
	if tpis := thirdPartyInvites(t, alice, room); tpis[pending[0].Token] == nil {
		t.Fatalf("no m.room.third_party_invite for carol: %v", tpis)
	}
	carol := srv.Register(t, "carol")
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{"third_party_signed": is.Signed(t, pending[0], carol.UserID)})
	if m := membershipOf(t, alice, room, string(carol.UserID)); m != "join" {
		t.Fatalf("carol: %q", m)
	}
	// The invite event carries the signed object the auth rules checked.
	ev, err := srv.HS.Store.CurrentStateEvent(context.Background(), id.RoomID(room), "m.room.member", string(carol.UserID))
	if err != nil {
		t.Fatal(err)
	}
	prev, err := srv.HS.Store.StateHistory(context.Background(), id.RoomID(room), "m.room.member", string(carol.UserID))
	if err != nil || len(prev) != 2 || !gjson.GetBytes(prev[0].JSON, "content.third_party_invite.signed.signatures").IsObject() {
		t.Fatalf("carol's member history: %v %v (current %s)", prev, err, ev.Membership)
	}

	// When an identity server fails, no room is created.
	rooms, _ := srv.HS.Store.ListRooms(context.Background())
	bad := invite3PID(is, "dave@example.org")
	bad["medium"] = "msisdn"
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"invite_3pid": []any{bad}}), http.StatusBadRequest, "M_UNRECOGNIZED")
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"invite_3pid": []any{map[string]any{"medium": "email"}}}), http.StatusBadRequest, "M_MISSING_PARAM")
	is.Close()
	res := alice.Do(t, http.MethodPost, "createRoom", map[string]any{"invite_3pid": []any{invite3PID(is, "erin@example.org")}})
	if res.Status != http.StatusBadGateway {
		t.Fatalf("identity server down: %d %s", res.Status, res.Body)
	}
	if after, _ := srv.HS.Store.ListRooms(context.Background()); len(after) != len(rooms) {
		t.Fatalf("rooms created by failed createRoom calls: %d -> %d", len(rooms), len(after))
	}
}

// Without federation.allow_private_ips the server does not call identity
// servers on loopback or private addresses (clients name them).
func TestThirdPartyInviteRefusesPrivateAddresses(t *testing.T) {
	ca := testserver.NewTestCA(t)
	srv := testserver.New(t, func(c *config.Config) { c.Federation.TrustedCAFile = ca.File })
	is := testserver.NewIdentityServer(t, ca)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	res := alice.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), invite3PID(is, "x@example.org"))
	if res.Status != http.StatusBadGateway || is.Requests != 0 {
		t.Fatalf("loopback identity server: %d %s (%d requests)", res.Status, res.Body, is.Requests)
	}
}
