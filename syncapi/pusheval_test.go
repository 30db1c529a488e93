package syncapi

import (
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"
)

type evalRoom struct {
	name    string
	members int
}

func (r evalRoom) GetOwnDisplayname() string { return r.name }
func (r evalRoom) GetMemberCount() int       { return r.members }
func (r evalRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	return &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@boss:hs": 100}}
}

// TestPushActionsMatchMautrix checks that pushActions (cached patterns)
// decides as mautrix's PushRuleset.GetActions does, over the default rules
// plus user rules of every kind, for a range of events.
func TestPushActionsMatchMautrix(t *testing.T) {
	user := id.UserID("@alice:hs")
	rs := defaultRuleset(user)
	pat := func(s string) *string { return &s }
	rs.Content = append([]*PushRule{{RuleID: "cake", Enabled: true, Actions: actNotifyHighlight, Pattern: pat("ch?colate*")}}, rs.Content...)
	rs.Override = append([]*PushRule{
		{RuleID: "glob", Enabled: true, Actions: actNotifySound, Conditions: []json.RawMessage{eventMatch("content.topic", "*urgent*")}},
		{RuleID: "escaped", Enabled: true, Actions: actNotifySoundHigh, Conditions: []json.RawMessage{eventMatch(`content.a\.b`, "x?z")}},
		{RuleID: "disabled", Enabled: false, Actions: actNotifySoundHigh, Conditions: []json.RawMessage{}},
	}, rs.Override...)
	rs.Room = []*PushRule{{RuleID: "!muted:hs", Enabled: true, Actions: actNone}}
	rs.Sender = []*PushRule{{RuleID: "@loud:hs", Enabled: true, Actions: actNotifyHighlight}}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	var mrs pushrules.PushRuleset
	if err := json.Unmarshal(b, &mrs); err != nil {
		t.Fatal(err)
	}
	state := func(s string) *string { return &s }
	type ev struct {
		typ, room, sender string
		stateKey          *string
		content           string
	}
	events := []ev{
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"hello"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"hi Alice!"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"malice"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"Ally Cat was here"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.notice","body":"alice"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"@room look"}`},
		{"m.room.message", "!r:hs", "@boss:hs", nil, `{"msgtype":"m.text","body":"@room look"}`},
		{"m.room.message", "!r:hs", "@boss:hs", nil, `{"msgtype":"m.text","body":"x","m.mentions":{"room":true}}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"alice","m.mentions":{}}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"x","m.mentions":{"user_ids":["@alice:hs"]}}`},
		{"m.room.message", "!r:hs", "@boss:hs", nil, `{"msgtype":"m.text","body":"x","m.mentions":{"room":1}}`},
		{"m.room.message", "!r:hs", "@boss:hs", nil, `{"msgtype":"m.text","body":"x","m.mentions":{"room":"true"}}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"x","m.mentions":{"user_ids":"@alice:hs"}}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"x","m.mentions":{"user_ids":[1,"@alice:hs"]}}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"I love chocolates"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"chxocolate"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"x","m.relates_to":{"rel_type":"m.replace","event_id":"$e"}}`},
		{"m.room.message", "!muted:hs", "@bob:hs", nil, `{"msgtype":"m.text","body":"hi"}`},
		{"m.room.message", "!r:hs", "@loud:hs", nil, `{"msgtype":"m.text","body":"hi"}`},
		{"m.room.message", "!r:hs", "@bob:hs", nil, `{"body":42}`},
		{"m.room.encrypted", "!r:hs", "@bob:hs", nil, `{"algorithm":"m.megolm.v1.aes-sha2"}`},
		{"m.call.invite", "!r:hs", "@bob:hs", nil, `{}`},
		{"m.reaction", "!r:hs", "@bob:hs", nil, `{"m.relates_to":{"rel_type":"m.annotation","key":"alice"}}`},
		{"m.room.member", "!r:hs", "@bob:hs", state("@alice:hs"), `{"membership":"invite"}`},
		{"m.room.member", "!r:hs", "@bob:hs", state("@carol:hs"), `{"membership":"invite"}`},
		{"m.room.tombstone", "!r:hs", "@bob:hs", state(""), `{"body":"gone"}`},
		{"m.room.server_acl", "!r:hs", "@bob:hs", state(""), `{}`},
		{"m.room.topic", "!r:hs", "@bob:hs", state(""), `{"topic":"very URGENT stuff"}`},
		{"m.custom", "!r:hs", "@bob:hs", nil, `{"a.b":"xyz"}`},
		{"m.custom", "!r:hs", "@bob:hs", nil, `{"a":{"b":"xyz"}}`},
		{"m.custom", "!r:hs", "@bob:hs", nil, `{"a.b":"xyyz"}`},
	}
	rooms := []evalRoom{{"Ally Cat", 2}, {"", 3}, {"alice", 20}}
	checked := 0
	for i, e := range events {
		for _, room := range rooms {
			for pass := 0; pass < 2; pass++ { // the second pass uses cached patterns
				var content event.Content
				if err := json.Unmarshal([]byte(e.content), &content.Raw); err != nil {
					t.Fatal(err)
				}
				evt := &event.Event{Type: event.Type{Type: e.typ}, RoomID: id.RoomID(e.room), Sender: id.UserID(e.sender), StateKey: e.stateKey, Content: content}
				want := mrs.GetActions(room, evt)
				got := pushActions(&mrs, room, evt)
				if fmt.Sprint(want) != fmt.Sprint(got) {
					t.Errorf("event %d %s in %+v: got %v, mautrix %v", i, e.content, room, got, want)
				}
				checked++
			}
		}
	}
	// Sanity: the cases are not all the same answer.
	var content event.Content
	_ = json.Unmarshal([]byte(`{"msgtype":"m.text","body":"I love chocolates"}`), &content.Raw)
	evt := &event.Event{Type: event.EventMessage, RoomID: "!r:hs", Sender: "@bob:hs", Content: content}
	if !pushActions(&mrs, rooms[1], evt).Should().Highlight {
		t.Error("content rule with a glob did not highlight")
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}
