package federation_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/json/jsontext"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// interceptHS2 replaces hs2's federation listener with one that answers the
// paths handled by fake and passes every other request to the real hs2.
func interceptHS2(t *testing.T, f *roomFixture, fake func(w http.ResponseWriter, r *http.Request) bool) {
	t.Helper()
	f.hs2.StopFederation()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", f.hs2.FedAddr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	real := f.hs2.HS.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fake(w, r) {
			real.ServeHTTP(w, r)
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{f.hs2.CA.Issue(t, "hs2.test")}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
}

// sentTxn is what watchHS2Transactions sees of an inbound transaction.
type sentTxn struct {
	PDUs []struct {
		Type string `json:"type"`
	} `json:"pdus"`
	EDUs []struct {
		Type    string         `json:"edu_type"`
		Content map[string]any `json:"content"`
	} `json:"edus"`
}

// watchHS2Transactions calls seen (one call at a time) with every
// transaction hs2 receives, which the real hs2 then handles as usual.
func watchHS2Transactions(t *testing.T, f *roomFixture, seen func(txn sentTxn)) {
	t.Helper()
	var mu sync.Mutex
	interceptHS2(t, f, func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasPrefix(req.URL.Path, "/_matrix/federation/v1/send/") {
			return false
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var txn sentTxn
		_ = json.Unmarshal(body, &txn)
		mu.Lock()
		seen(txn)
		mu.Unlock()
		return false
	})
}

// buildState makes a state event by sender on hs1's current room state, signed as hs2.test.
func (f *roomFixture) buildState(t *testing.T, sender id.UserID, evType, stateKey string, content map[string]any, prev []id.EventID, depth int64) (*pdu.PDU, id.EventID) {
	t.Helper()
	return f.buildPDU(t, nil, sender, evType, &stateKey, content, prev, depth)
}

// An event whose prev_events get_missing_events cannot fully provide: the
// receiving server asks for the state at the remaining gap (state_ids),
// fetches the events it lacks (/event), stores them as outliers and accepts
// the event on that state.
func TestMissingPrevEventsStateIDsFallback(t *testing.T) {
	f := joinedPair(t)
	ctx := context.Background()
	ext, err := f.hs1.HS.Store.ForwardExtremities(ctx, f.room)
	if err != nil {
		t.Fatal(err)
	}
	var depth int64
	evs, _ := f.hs1.HS.Store.GetEvents(ctx, ext)
	for _, e := range evs {
		depth = max(depth, e.Depth+1)
	}
	// Q (a state event hs1 never sees), R (a message hs1 gets from
	// get_missing_events), S (the message pushed to hs1).
	q, qID := f.buildState(t, f.bob.UserID, "m.room.member", string(f.bob.UserID), map[string]any{"membership": "join", "displayname": "Q"}, ext, depth)
	r, rID := f.build(t, f.bob.UserID, f.hs2.HS.SigningKey, "R", []id.EventID{qID}, depth+1)
	s, sID := f.build(t, f.bob.UserID, f.hs2.HS.SigningKey, "S", []id.EventID{rID}, depth+2)
	stateIDs := []id.EventID{}
	state, err := f.hs1.HS.Store.CurrentState(ctx, f.room)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range state {
		stateIDs = append(stateIDs, e.EventID)
	}
	var askedState, askedQ atomic.Bool
	interceptHS2(t, f, func(w http.ResponseWriter, req *http.Request) bool {
		p := req.URL.Path
		switch {
		case strings.HasPrefix(p, "/_matrix/federation/v1/get_missing_events/"):
			_ = json.NewEncoder(w).Encode(map[string]any{"events": []json.RawMessage{raw(t, r)}})
		case strings.HasPrefix(p, "/_matrix/federation/v1/state_ids/") && req.URL.Query().Get("event_id") == string(qID):
			askedState.Store(true)
			_ = json.NewEncoder(w).Encode(map[string]any{"pdu_ids": stateIDs, "auth_chain_ids": []id.EventID{}})
		case p == "/_matrix/federation/v1/event/"+string(qID):
			askedQ.Store(true)
			_ = json.NewEncoder(w).Encode(map[string]any{"origin": "hs2.test", "origin_server_ts": 1, "pdus": []json.RawMessage{raw(t, q)}})
		default:
			return false
		}
		return true
	})

	status, body := f.sendRaw(t, "gap-state", txn("hs2.test", raw(t, s)))
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	if res := body["pdus"].(map[string]any)[string(sID)].(map[string]any); res["error"] != nil {
		t.Fatalf("S not accepted: %v", res)
	}
	if !askedState.Load() || !askedQ.Load() {
		t.Fatalf("state_ids asked: %v, Q fetched: %v", askedState.Load(), askedQ.Load())
	}
	qEv, err := f.hs1.HS.Store.GetEvent(ctx, qID)
	if err != nil || !qEv.Outlier || qEv.Rejected {
		t.Fatalf("Q not stored as an accepted outlier: %+v %v", qEv, err)
	}
	if bodies := timelineBodies(t, f.alice, f.room); !hasBody(bodies, "R") || !hasBody(bodies, "S") {
		t.Fatalf("timeline: %v", bodies)
	}
	// No state is known at an outlier.
	uri := "/_matrix/federation/v1/state_ids/" + string(f.room) + "?event_id=" + string(qID)
	if st, b := rawFed(t, f.hs1, "GET", uri, xMatrix(t, f.hs2.HS.SigningKey, "GET", uri, "hs2.test", "hs1.test", nil), nil); st != 404 || b["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("state_ids at an outlier: %d %v", st, b)
	}
}

// In room version 6 and later an event that is not canonical JSON (here a
// float in its content) is invalid: a server returning one from
// get_missing_events does not get it stored, not even redacted.
func TestMissingEventWithFloatIgnored(t *testing.T) {
	f := joinedPair(t)
	key := f.hs2.HS.SigningKey
	bad, _ := f.build(t, f.bob.UserID, key, "float", nil, 0)
	bad.Content = jsontext.Value(`{"msgtype":"m.text","body":"float","bad_val":1.1}`)
	bad.Hashes, bad.Signatures = &pdu.Hashes{SHA256: make([]byte, 32)}, nil
	if err := bad.Sign("11", "hs2.test", key.ID, key.Priv); err != nil {
		t.Fatal(err)
	}
	badID, err := bad.GetEventID("11")
	if err != nil {
		t.Fatal(err)
	}
	next, nextID := f.build(t, f.bob.UserID, key, "after the float", []id.EventID{badID}, bad.Depth+1)
	interceptHS2(t, f, func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasPrefix(req.URL.Path, "/_matrix/federation/v1/get_missing_events/") {
			return false
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"events": []json.RawMessage{raw(t, bad)}})
		return true
	})
	status, body := f.sendRaw(t, "float", txn("hs2.test", raw(t, next)))
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	if f.stored(badID) {
		t.Fatal("an event with a float was stored")
	}
	if res := body["pdus"].(map[string]any)[string(nextID)].(map[string]any); res["error"] == nil || f.stored(nextID) {
		t.Fatalf("event after the invalid one accepted: %v", res)
	}
}

// An invite countersigned into something that is not canonical JSON is
// refused with M_BAD_JSON (room version 6 and later).
func TestInviteResponseWithFloatRefused(t *testing.T) {
	f := joinedPair(t)
	carol := f.hs2.Register(t, "carol")
	interceptHS2(t, f, func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasPrefix(req.URL.Path, "/_matrix/federation/v2/invite/") {
			return false
		}
		var body struct {
			Event map[string]any `json:"event"`
		}
		_ = json.NewDecoder(req.Body).Decode(&body)
		body.Event["bad_val"] = 1.1
		_ = json.NewEncoder(w).Encode(map[string]any{"event": body.Event})
		return true
	})
	res := f.alice.Do(t, http.MethodPost, "rooms/"+string(f.room)+"/invite", map[string]any{"user_id": carol.UserID})
	if res.Status != 400 || res.JSON["errcode"] != "M_BAD_JSON" {
		t.Fatalf("invite with a float in the response: %d %s", res.Status, res.Body)
	}
}
