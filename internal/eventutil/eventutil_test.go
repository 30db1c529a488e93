package eventutil

import (
	"encoding/json"
	"testing"
)

func TestClientEvent(t *testing.T) {
	pdu := []byte(`{"auth_events":[],"content":{"body":"hi \"x\"","msgtype":"m.text"},"depth":5,"origin_server_ts":1000,"prev_events":[],"room_id":"!r:hs","sender":"@a:hs","type":"m.room.message","hashes":{"sha256":"x"},"signatures":{}}`)
	out := ClientEvent(nil, ClientInput{PDU: pdu, EventID: "$e", RoomID: "!r:hs", Unsigned: []byte(`{"prev_content":{"a":1}}`), TxnID: "t\"1", NowMS: 1500})
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("invalid JSON %s: %v", out, err)
	}
	if m["event_id"] != "$e" || m["room_id"] != "!r:hs" || m["sender"] != "@a:hs" || m["type"] != "m.room.message" || m["origin_server_ts"] != 1000.0 {
		t.Fatalf("wrong fields: %s", out)
	}
	if _, ok := m["state_key"]; ok {
		t.Fatalf("message event has state_key: %s", out)
	}
	u := m["unsigned"].(map[string]any)
	if u["age"] != 500.0 || u["transaction_id"] != "t\"1" || u["prev_content"].(map[string]any)["a"] != 1.0 {
		t.Fatalf("wrong unsigned: %s", out)
	}
	if m["content"].(map[string]any)["body"] != `hi "x"` {
		t.Fatalf("wrong content: %s", out)
	}
	if _, ok := m["hashes"]; ok {
		t.Fatalf("federation fields leaked: %s", out)
	}

	state := []byte(`{"origin_server_ts":1,"sender":"@a:hs","type":"m.room.redaction","state_key":"","content":{"redacts":"$x"}}`)
	out = ClientEvent(nil, ClientInput{PDU: state, EventID: "$f", RoomID: "!r", NowMS: 0})
	m = nil
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("invalid JSON %s: %v", out, err)
	}
	if m["state_key"] != "" || m["redacts"] != "$x" || m["unsigned"].(map[string]any)["age"] != 0.0 {
		t.Fatalf("state/redacts: %s", out)
	}
}

func TestStrippedState(t *testing.T) {
	out := StrippedState(nil, []byte(`{"content":{"name":"n"},"sender":"@a:hs","state_key":"","type":"m.room.name","depth":3}`))
	if string(out) != `{"content":{"name":"n"},"sender":"@a:hs","state_key":"","type":"m.room.name"}` {
		t.Fatalf("got %s", out)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"plain", "quo\"te", "back\\slash", "ctl\x01", "ünï", "bad\xff"} {
		var got string
		if err := json.Unmarshal(AppendString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if s != "bad\xff" && got != s {
			t.Fatalf("%q round-tripped to %q", s, got)
		}
	}
}

func BenchmarkClientEvent(b *testing.B) {
	pdu := []byte(`{"auth_events":["$a","$b","$c"],"content":{"body":"hello world","msgtype":"m.text"},"depth":5,"hashes":{"sha256":"abc"},"origin_server_ts":1000,"prev_events":["$p"],"room_id":"!r:hs","sender":"@a:hs","signatures":{"hs":{"ed25519:a":"sig"}},"type":"m.room.message"}`)
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = ClientEvent(buf[:0], ClientInput{PDU: pdu, EventID: "$e", RoomID: "!r:hs", NowMS: 2000})
	}
}

func TestFederationEvent(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal(FederationEvent([]byte(`{"type":"x","depth":3}`), "$e"), &m); err != nil || m["event_id"] != "$e" || m["depth"] != 3.0 {
		t.Fatalf("got %v (%v)", m, err)
	}
	if got := string(FederationEvent([]byte(`{"event_id":"$v1:hs","type":"x"}`), "$v1:hs")); got != `{"event_id":"$v1:hs","type":"x"}` {
		t.Fatalf("v1 PDU changed: %s", got)
	}
}
