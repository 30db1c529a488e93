package adminapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"parley/adminapi"
	"parley/internal/homeserver"
	"parley/internal/testserver"
)

func exportLines(t *testing.T, admin *testserver.Client, query string) []adminapi.ExportRecord {
	t.Helper()
	status, body := rawGet(t, admin, "/_parley/admin/v1/export?"+query)
	if status != 200 {
		t.Fatalf("export %s: %d %s", query, status, body)
	}
	var out []adminapi.ExportRecord
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec adminapi.ExportRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// rawGet is a GET whose body is not parsed (JSON Lines is not one JSON value).
func rawGet(t *testing.T, c *testserver.Client, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.S.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestExportWithHold: the JSON Lines export round-trips every message of a
// room, including the original of a message redacted while the room was held.
func TestExportWithHold(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	r := url.PathEscape(room)
	if res := alice.Do(t, http.MethodPut, "/_parley/admin/v1/holds/room/"+r, map[string]any{}); res.Status != 403 {
		t.Fatalf("non-admin hold: %d", res.Status)
	}
	admin.MustDo(t, http.MethodPut, "/_parley/admin/v1/holds/room/"+r, map[string]any{})
	if res := admin.MustDo(t, http.MethodGet, "/_parley/admin/v1/holds", nil); len(res.JSON["holds"].([]any)) != 1 {
		t.Fatalf("holds: %s", res.Body)
	}
	sent := map[string]string{}
	for _, m := range []struct {
		c    *testserver.Client
		text string
	}{{alice, "first message"}, {bob, "contract details: price is 42"}, {alice, "see mxc attachment"}, {bob, "last word"}} {
		sent[send(t, m.c, room, m.text)] = m.text
	}
	img := alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/img1", room),
		map[string]any{"msgtype": "m.image", "body": "photo.png", "url": "mxc://hs1.test/abcdef"}).JSON["event_id"].(string)
	sent[img] = "photo.png"
	var secret string
	for evID, text := range sent {
		if strings.HasPrefix(text, "contract") {
			secret = evID
		}
	}
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/r1", room, secret), map[string]any{"reason": "oops"})
	// Clients see it redacted.
	if ev := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, secret), nil); len(ev.JSON["content"].(map[string]any)) != 0 {
		t.Fatalf("client sees redacted content: %s", ev.Body)
	}

	recs := exportLines(t, admin, "room_id="+r)
	got := map[string]adminapi.ExportRecord{}
	types := map[string]int{}
	for _, rec := range recs {
		got[string(rec.EventID)] = rec
		types[rec.Type]++
	}
	for evID, text := range sent {
		rec, ok := got[evID]
		if !ok {
			t.Fatalf("message %s missing from export", evID)
		}
		var c struct {
			Body string `json:"body"`
		}
		if evID == secret {
			if !rec.Redacted || rec.RedactedBecause == "" {
				t.Fatalf("redacted message not marked: %+v", rec)
			}
			_ = json.Unmarshal(rec.OriginalContent, &c)
		} else {
			_ = json.Unmarshal(rec.Content, &c)
		}
		if c.Body != text {
			t.Fatalf("%s: body %q, want %q", evID, c.Body, text)
		}
	}
	if m := got[img].Media; len(m) != 1 || m[0] != "mxc://hs1.test/abcdef" {
		t.Fatalf("media refs: %v", m)
	}
	if types["m.room.member"] < 2 || types["m.room.redaction"] != 1 || types["m.room.create"] != 1 {
		t.Fatalf("types: %v", types)
	}
	// Filters: user, keyword, time range.
	if recs := exportLines(t, admin, "room_id="+r+"&user_id="+url.QueryEscape(string(bob.UserID))+"&keyword=price"); len(recs) != 1 || string(recs[0].EventID) != secret {
		t.Fatalf("keyword filter: %+v", recs)
	}
	if recs := exportLines(t, admin, "user_id="+url.QueryEscape(string(alice.UserID))); len(recs) < 3 {
		t.Fatalf("user export: %d records", len(recs))
	} else {
		for _, rec := range recs {
			if rec.Sender != alice.UserID {
				t.Fatalf("user export has %s's event", rec.Sender)
			}
		}
	}
	if recs := exportLines(t, admin, "room_id="+r+"&to=1"); len(recs) != 0 {
		t.Fatalf("time filter: %d", len(recs))
	}
	// HTML transcript.
	_, html := rawGet(t, admin, "/_parley/admin/v1/export?format=html&room_id="+r)
	if !strings.Contains(string(html), "<html>") || !strings.Contains(string(html), "last word") ||
		!strings.Contains(string(html), "original: contract details") {
		t.Fatalf("html: %s", html)
	}
	for _, q := range []string{"", "room_id=" + r + "&format=pdf", "room_id=" + r + "&from=x"} {
		if res := admin.Do(t, http.MethodGet, "/_parley/admin/v1/export?"+q, nil); res.Status != 400 {
			t.Errorf("export %q: %d", q, res.Status)
		}
	}
	if res := alice.Do(t, http.MethodGet, "/_parley/admin/v1/export?room_id="+r, nil); res.Status != 403 {
		t.Fatalf("non-admin export: %d", res.Status)
	}
	if n := len(auditEntries(t, admin, "action=export")); n < 5 {
		t.Fatalf("export runs audited: %d", n)
	}
	// Without a hold, redacted content is gone.
	admin.MustDo(t, http.MethodDelete, "/_parley/admin/v1/holds/room/"+r, nil)
	gone := send(t, alice, room, "unheld")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/r2", room, gone), map[string]any{})
	for _, rec := range exportLines(t, admin, "room_id="+r) {
		if string(rec.EventID) == gone && (!rec.Redacted || len(rec.OriginalContent) != 0) {
			t.Fatalf("unheld redaction kept: %+v", rec)
		}
	}
}

// TestExportCLI runs the export behind `parley export` against a live server's database.
func TestExportCLI(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	msg := send(t, alice, room, "for the record")
	var buf bytes.Buffer
	n, err := homeserver.Export(context.Background(), srv.Cfg, homeserver.ExportRequest{RoomID: room, Keyword: "record"}, &buf)
	if err != nil || n != 1 || !strings.Contains(buf.String(), msg) {
		t.Fatalf("export: %d %v %s", n, err, buf.String())
	}
	if _, err := homeserver.Export(context.Background(), srv.Cfg, homeserver.ExportRequest{}, &buf); err == nil {
		t.Fatal("export without room or user succeeded")
	}
	if e := auditEntries(t, admin, "action=export"); len(e) != 2 || e[0]["details"].(map[string]any)["via"] != "cli" {
		t.Fatalf("cli export audit: %v", e)
	}
}
