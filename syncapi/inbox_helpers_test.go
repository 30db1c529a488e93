package syncapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// syncResp is the part of a /sync response the inbox tests read.
type syncResp struct {
	NextBatch   string `json:"next_batch"`
	AccountData struct {
		Events []syncEvent `json:"events"`
	} `json:"account_data"`
	Presence struct {
		Events []syncEvent `json:"events"`
	} `json:"presence"`
	Rooms struct {
		Join map[id.RoomID]struct {
			AccountData struct {
				Events []syncEvent `json:"events"`
			} `json:"account_data"`
			Ephemeral struct {
				Events []syncEvent `json:"events"`
			} `json:"ephemeral"`
			UnreadNotifications *struct {
				NotificationCount int `json:"notification_count"`
				HighlightCount    int `json:"highlight_count"`
			} `json:"unread_notifications"`
			UnreadThreadNotifications map[string]struct {
				NotificationCount int `json:"notification_count"`
				HighlightCount    int `json:"highlight_count"`
			} `json:"unread_thread_notifications"`
		} `json:"join"`
	} `json:"rooms"`
	raw []byte
}

type syncEvent struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content json.RawMessage `json:"content"`
}

func (e syncEvent) content() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(e.Content, &m)
	return m
}

// doSync runs /sync with the given query parameters (since, filter, timeout, ...).
func inboxSync(t *testing.T, c *testserver.Client, params map[string]string) *syncResp {
	t.Helper()
	q := url.Values{}
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	res := c.MustDo(t, http.MethodGet, "sync?"+q.Encode(), nil)
	var out syncResp
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatalf("decode sync: %v: %s", err, res.Body)
	}
	out.raw = res.Body
	return &out
}

func since(tok string) map[string]string { return map[string]string{"since": tok} }

func findType(evs []syncEvent, typ string) []syncEvent {
	var out []syncEvent
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// login logs c's user in again, returning a second device.
func login(t *testing.T, c *testserver.Client) *testserver.Client {
	t.Helper()
	res := c.S.Anon().MustDo(t, http.MethodPost, "login", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": string(c.UserID)}, "password": c.Password})
	return &testserver.Client{S: c.S, UserID: c.UserID, DeviceID: id.DeviceID(res.JSON["device_id"].(string)),
		AccessToken: res.JSON["access_token"].(string), Password: c.Password}
}

func wantErr(t *testing.T, res *testserver.Response, status int, code string) {
	t.Helper()
	if res.Status != status || res.ErrCode != code {
		t.Fatalf("got %d %q, want %d %q: %s", res.Status, res.ErrCode, status, code, res.Body)
	}
}

// newRoom creates a public room as creator, joins the others and returns its ID.
func newRoom(t *testing.T, creator *testserver.Client, others ...*testserver.Client) id.RoomID {
	t.Helper()
	res := creator.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"})
	room := id.RoomID(res.JSON["room_id"].(string))
	for _, o := range others {
		o.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	}
	return room
}

var msgTxn atomic.Int64

// sendMsg sends an m.room.message and returns its event ID.
func sendMsg(t *testing.T, c *testserver.Client, room id.RoomID, content map[string]any) string {
	t.Helper()
	res := c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint("inbox", msgTxn.Add(1))), content)
	return res.JSON["event_id"].(string)
}

func text(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

// waitCounts syncs (with extra parameters) until room's unread counts are
// want; push rules are evaluated just after an event is persisted.
func waitCounts(t *testing.T, c *testserver.Client, room id.RoomID, want counts, params map[string]string) *syncResp {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := inboxSync(t, c, params)
		if got := unread(t, s, room); got == want {
			return s
		} else if time.Now().After(deadline) {
			t.Fatalf("counts = %+v, want %+v: %s", got, want, s.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
