package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

func TestThirdPartyInviteAcrossServers(t *testing.T) {
	hs1, hs2 := pair(t)
	is := testserver.NewIdentityServer(t, hs1.CA)
	alice := hs1.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Across"})
	invite := func(address string) testserver.PendingInvite {
		t.Helper()
		alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room))+"/invite",
			map[string]any{"id_server": is.Name, "id_access_token": is.AccessToken, "medium": "email", "address": address})
		p := is.Pending("email", address)
		if len(p) != 1 {
			t.Fatalf("pending invitations for %s: %v", address, p)
		}
		return p[0]
	}

	// Carol, on hs2, binds the address: the identity server tells hs2, which
	// has hs1 (the inviter's server) issue the invite, which reaches hs2.
	invite("carol@example.org")
	carol := hs2.Register(t, "carol")
	if status := is.OnBind(t, hs2.URL, "email", "carol@example.org", carol.UserID); status != http.StatusOK {
		t.Fatalf("onbind: %d", status)
	}
	if m := membership(t, alice, room, carol.UserID); m != "invite" {
		t.Fatalf("carol on hs1 after onbind: %q", m)
	}
	eventually(t, "carol's invite on hs2", func() bool { return invitedTo(t, carol, room) })
	carol.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room)), map[string]any{})
	eventually(t, "carol joined", func() bool { return membership(t, alice, room, carol.UserID) == "join" })

	// Dave, on hs2, joins with the signed invitation his identity server gave him.
	p := invite("dave@example.org")
	dave := hs2.Register(t, "dave")
	forger := testserver.NewIdentityServer(t, hs1.CA)
	res := dave.Do(t, http.MethodPost, "join/"+url.PathEscape(string(room)), map[string]any{"third_party_signed": forger.Signed(t, p, dave.UserID)})
	if res.Status != http.StatusForbidden {
		t.Fatalf("join with a forged signature: %d %s", res.Status, res.Body)
	}
	dave.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room)), map[string]any{"third_party_signed": is.Signed(t, p, dave.UserID)})
	eventually(t, "dave joined", func() bool { return membership(t, alice, room, dave.UserID) == "join" })

	// The federation endpoint's checks, signed as hs2.
	p = invite("erin@example.org")
	erin := hs2.Register(t, "erin").UserID
	partial := func(roomID id.RoomID, signed map[string]any) map[string]any {
		return map[string]any{"type": "m.room.member", "room_id": roomID, "sender": alice.UserID, "state_key": erin,
			"content": map[string]any{"membership": "invite", "third_party_invite": map[string]any{"display_name": "e", "signed": signed}}}
	}
	fc := fedClient(t, hs2)
	ctx := context.Background()
	path := mfedPath("v1", "exchange_third_party_invite", string(room))
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodPut, path, partial(room, forger.Signed(t, p, erin)), nil); !isErr(err, http.StatusForbidden, "M_FORBIDDEN") {
		t.Fatalf("forged exchange: %v", err)
	}
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodPut, path, partial("!other:hs1.test", is.Signed(t, p, erin)), nil); !isErr(err, http.StatusBadRequest, "M_INVALID_PARAM") {
		t.Fatalf("room mismatch: %v", err)
	}
	if m := membership(t, alice, room, erin); m != "" {
		t.Fatalf("erin after refused exchanges: %q", m)
	}
	// An invitee who does not exist: hs2 refuses the invite, nothing changes.
	nobody := id.UserID("@nobody:hs2.test")
	noSuch := partial(room, is.Signed(t, p, nobody))
	noSuch["state_key"] = nobody
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodPut, path, noSuch, nil); !isErr(err, http.StatusBadGateway, "M_UNKNOWN") {
		t.Fatalf("exchange for an unknown invitee: %v", err)
	}
	if status, _ := rawFed(t, hs1, http.MethodPut, "/_matrix/federation/v1/exchange_third_party_invite/"+url.PathEscape(string(room)), "", []byte(toJSON(partial(room, is.Signed(t, p, erin))))); status != http.StatusUnauthorized {
		t.Fatalf("unsigned exchange: %d", status)
	}
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodPut, path, partial(room, is.Signed(t, p, erin)), nil); err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if m := membership(t, alice, room, erin); m != "invite" {
		t.Fatalf("erin after the exchange: %q", m)
	}
}
