package syncapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

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
