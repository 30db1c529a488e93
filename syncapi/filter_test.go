package syncapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"parley/internal/testserver"
	"parley/syncapi"
)

func TestFilters(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	fpath := testserver.Sprintf("user/%s/filter", alice.UserID)

	for name, body := range map[string]string{
		"bad event_format":  `{"event_format":"xml"}`,
		"limit not integer": `{"presence":{"limit":"ten"}}`,
		"negative limit":    `{"account_data":{"limit":-1}}`,
		"bad room id":       `{"room":{"rooms":["nope"]}}`,
		"bad sender":        `{"presence":{"senders":["bob"]}}`,
		"types not strings": `{"account_data":{"types":[1]}}`,
		"array body":        `[]`,
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, alice.Do(t, http.MethodPost, fpath, body), 400, "M_BAD_JSON") })
	}
	wantErr(t, alice.Do(t, http.MethodPost, fpath, `{`), 400, "M_NOT_JSON")
	wantErr(t, bob.Do(t, http.MethodPost, fpath, `{}`), 403, "M_FORBIDDEN")

	filter := `{"account_data":{"not_types":["com.example.hidden","m.push_rules"]},"event_fields":["type","content.keep"]}`
	res := alice.MustDo(t, http.MethodPost, fpath, filter)
	fid, _ := res.JSON["filter_id"].(string)
	if fid == "" {
		t.Fatalf("no filter_id: %s", res.Body)
	}
	got := alice.MustDo(t, http.MethodGet, fpath+"/"+fid, nil)
	var want, have any
	_ = json.Unmarshal([]byte(filter), &want)
	_ = json.Unmarshal(got.Body, &have)
	if string(mustJSON(want)) != string(mustJSON(have)) {
		t.Fatalf("GET filter = %s, want %s", got.Body, filter)
	}
	wantErr(t, alice.Do(t, http.MethodGet, fpath+"/999999", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodGet, fpath+"/abc", nil), 404, "M_NOT_FOUND")
	// Another user's filter ID is not found for bob.
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("user/%s/filter/%s", bob.UserID, fid), nil), 404, "M_NOT_FOUND")
	wantErr(t, bob.Do(t, http.MethodGet, "sync?filter="+fid, nil), 400, "M_INVALID_PARAM")

	adPath := testserver.Sprintf("user/%s/account_data/", alice.UserID)
	alice.MustDo(t, http.MethodPut, adPath+"com.example.hidden", map[string]any{"keep": 1})
	alice.MustDo(t, http.MethodPut, adPath+"com.example.shown", map[string]any{"keep": 2, "drop": 3})

	s := inboxSync(t, alice, map[string]string{"filter": fid})
	if len(s.AccountData.Events) != 1 || s.AccountData.Events[0].Type != "com.example.shown" {
		t.Fatalf("filtered account data: %s", s.raw)
	}
	if c := s.AccountData.Events[0].content(); c["keep"] != float64(2) || c["drop"] != nil {
		t.Fatalf("event_fields not applied: %s", s.raw)
	}
	// An inline filter works as well; limit keeps the newest.
	s = inboxSync(t, alice, map[string]string{"filter": `{"account_data":{"limit":1,"types":["com.example.*"]}}`})
	if len(s.AccountData.Events) != 1 || s.AccountData.Events[0].Type != "com.example.shown" {
		t.Fatalf("inline filter: %s", s.raw)
	}
	// Unfiltered: both plus push rules.
	if s := inboxSync(t, alice, nil); len(s.AccountData.Events) != 3 {
		t.Fatalf("unfiltered: %s", s.raw)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestApplyEventFields(t *testing.T) {
	ev := json.RawMessage(`{"type":"m.room.message","content":{"body":"hi","m.relates":{"x":1},"n":12345678901234567890},"sender":"@a:b","unsigned":{"age":1}}`)
	got := syncapi.ApplyEventFields(ev, []string{"type", "content.body", `content.m\.relates`, "content.n", "missing.field"})
	want := `{"content":{"body":"hi","m.relates":{"x":1},"n":12345678901234567890},"type":"m.room.message"}`
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got := syncapi.ApplyEventFields(ev, nil); string(got) != string(ev) {
		t.Fatalf("no fields changed the event: %s", got)
	}
}

// TestEventFieldsApplyToRoomEvents checks that event_fields trims events of
// every stream, timeline included.
func TestEventFieldsApplyToRoomEvents(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := newRoom(t, alice)
	sendMsg(t, alice, room, map[string]any{"msgtype": "m.text", "body": "hello", "extra": 1})
	res := alice.MustDo(t, http.MethodGet, "sync?filter="+url.QueryEscape(`{"event_fields":["type","content.body"]}`), nil)
	var body struct {
		Rooms struct {
			Join map[string]struct {
				Timeline struct {
					Events []map[string]any `json:"events"`
				} `json:"timeline"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		t.Fatal(err)
	}
	evs := body.Rooms.Join[string(room)].Timeline.Events
	if len(evs) == 0 {
		t.Fatalf("no timeline: %s", res.Body)
	}
	found := false
	for _, ev := range evs {
		if len(ev) > 2 || ev["event_id"] != nil || ev["sender"] != nil {
			t.Fatalf("event not trimmed: %v", ev)
		}
		if ev["type"] == "m.room.message" {
			c := ev["content"].(map[string]any)
			found = c["body"] == "hello" && c["extra"] == nil && c["msgtype"] == nil
		}
	}
	if !found {
		t.Fatalf("message not trimmed to content.body: %s", res.Body)
	}
}
