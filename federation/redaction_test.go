package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// buildEvent makes a non-state event by sender (of hs2) on hs1's current
// forward extremities of f.room, signed as hs2.test.
func (f *roomFixture) buildEvent(t *testing.T, sender id.UserID, evType string, content map[string]any) (*pdu.PDU, id.EventID) {
	t.Helper()
	return f.buildPDU(t, nil, sender, evType, nil, content, nil, 0)
}

// TestRedactionsOverFederation: a redaction from another server is applied
// when its sender may redact the event (their own server's event, or the
// redact power level), left unapplied otherwise, and soft-fails when it
// names an event of another room.
func TestRedactionsOverFederation(t *testing.T) {
	f := joinedPair(t)
	ctx := context.Background()
	getEvent := func(room id.RoomID, ev id.EventID) map[string]any {
		return f.alice.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(room))+"/event/"+url.PathEscape(string(ev)), nil).JSON
	}
	body := func(e map[string]any) any { return e["content"].(map[string]any)["body"] }

	// bob redacts his own message on hs2: hs1 stores it redacted.
	msg := send(t, f.bob, f.room, "oops")
	eventually(t, "bob's message on hs1", func() bool { _, err := f.hs1.HS.Store.GetEvent(ctx, msg); return err == nil })
	f.bob.MustDo(t, http.MethodPut, "rooms/"+url.PathEscape(string(f.room))+"/redact/"+url.PathEscape(string(msg))+"/r1", map[string]any{"reason": "typo"})
	eventually(t, "redaction applied on hs1", func() bool {
		e := getEvent(f.room, msg)
		unsigned, _ := e["unsigned"].(map[string]any)
		return body(e) == nil && unsigned["redacted_because"] != nil
	})

	// bob may not redact alice's message (other server, no redact power):
	// the redaction is accepted but alice's message stays as it was.
	mine := send(t, f.alice, f.room, "mine")
	red, redID := f.buildEvent(t, f.bob.UserID, "m.room.redaction", map[string]any{"redacts": mine})
	if status, b := f.sendRaw(t, "red1", txn("hs2.test", raw(t, red))); status != 200 {
		t.Fatalf("send: %d %v", status, b)
	}
	if ev, err := f.hs1.HS.Store.GetEvent(ctx, redID); err != nil || ev.Rejected {
		t.Fatalf("redaction not stored as accepted: %+v %v", ev, err)
	}
	if body(getEvent(f.room, mine)) != "mine" {
		t.Fatal("a redaction without the power to redact was applied")
	}

	// A redaction naming bob's message in another room soft-fails.
	other := createRoom(t, f.alice, map[string]any{"preset": "public_chat"})
	f.bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(other))+"?server_name=hs1.test", map[string]any{})
	elsewhere := send(t, f.bob, other, "elsewhere")
	eventually(t, "bob's message in the other room on hs1", func() bool { _, err := f.hs1.HS.Store.GetEvent(ctx, elsewhere); return err == nil })
	cross, crossID := f.buildEvent(t, f.bob.UserID, "m.room.redaction", map[string]any{"redacts": elsewhere})
	if status, b := f.sendRaw(t, "red2", txn("hs2.test", raw(t, cross))); status != 200 {
		t.Fatalf("send: %d %v", status, b)
	}
	if ev, err := f.hs1.HS.Store.GetEvent(ctx, crossID); err != nil || !ev.SoftFailed {
		t.Fatalf("cross-room redaction not soft-failed: %+v %v", ev, err)
	}
	if body(getEvent(other, elsewhere)) != "elsewhere" {
		t.Fatal("a redaction from another room was applied")
	}
}
