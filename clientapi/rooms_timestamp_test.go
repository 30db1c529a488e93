package clientapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"parley/internal/testserver"
)

func TestTimestampToEvent(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	eve := srv.Register(t, "eve")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	var ids []string
	var tss []int64
	for i := 0; i < 3; i++ {
		ev := sendMsg(t, alice, room, fmt.Sprint(i))
		res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil)
		ids = append(ids, ev)
		tss = append(tss, int64(res.JSON["origin_server_ts"].(float64)))
		waitNextMS(tss[i])
	}
	find := func(ts int64, dir string) string {
		t.Helper()
		res := alice.MustDo(t, http.MethodGet, v1Path("rooms/%s/timestamp_to_event", room)+fmt.Sprintf("?ts=%d&dir=%s", ts, dir), nil)
		if int64(res.JSON["origin_server_ts"].(float64)) <= 0 {
			t.Fatalf("no origin_server_ts: %s", res.Body)
		}
		return res.JSON["event_id"].(string)
	}
	if got := find(tss[1], "f"); got != ids[1] {
		t.Fatalf("f at ts: %s want %s", got, ids[1])
	}
	if got := find(tss[1]+1, "f"); got != ids[2] {
		t.Fatalf("f after ts: %s want %s", got, ids[2])
	}
	if got := find(tss[1]-1, "b"); got != ids[0] {
		t.Fatalf("b before ts returned a later event: %s", got)
	}
	if got := find(tss[2]+1000, "b"); got != ids[2] {
		t.Fatalf("b after all: %s want %s", got, ids[2])
	}
	wantErr(t, alice.Do(t, http.MethodGet, v1Path("rooms/%s/timestamp_to_event", room)+fmt.Sprintf("?ts=%d&dir=f", tss[2]+1000), nil), http.StatusNotFound, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodGet, v1Path("rooms/%s/timestamp_to_event", room)+"?ts=1&dir=x", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodGet, v1Path("rooms/%s/timestamp_to_event", room)+"?dir=f", nil), http.StatusBadRequest, "M_MISSING_PARAM")
	wantErr(t, alice.Do(t, http.MethodGet, v1Path("rooms/%s/timestamp_to_event", room)+"?ts=abc&dir=f", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, eve.Do(t, http.MethodGet, v1Path("rooms/%s/timestamp_to_event", room)+"?ts=1&dir=f", nil), http.StatusForbidden, "M_FORBIDDEN")
}

// waitNextMS sleeps until the wall clock is past ms, so events get distinct timestamps.
func waitNextMS(ms int64) {
	for time.Now().UnixMilli() <= ms+1 {
		time.Sleep(time.Millisecond)
	}
}
