// Package eventutil turns stored PDUs into the client-server event format and
// into stripped state. It works on the raw PDU JSON with gjson and appends to
// byte slices, because it runs for every event of every /sync response.
package eventutil

import (
	"strconv"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// ClientInput is what ClientEvent needs about one stored event.
type ClientInput struct {
	// PDU is the (signed, possibly redacted) PDU JSON.
	PDU     []byte
	EventID string
	RoomID  string
	// Unsigned is a JSON object of server-computed unsigned fields
	// (prev_content, redacted_because, ...), or empty.
	Unsigned []byte
	// TxnID is set only when the event goes to the device that sent it.
	TxnID string
	// Membership, when set, is the requesting user's membership in the room
	// at the event (unsigned.membership, spec v1.11).
	Membership string
	// NowMS is the current time, for unsigned.age.
	NowMS int64
}

// clientFields reads the top-level keys ClientEvent needs in one pass over
// the PDU (gjson.GetMany would scan it once per key): content,
// origin_server_ts, sender, type, state_key and redacts, in that order.
func clientFields(pdu []byte) (r [6]gjson.Result) {
	gjson.ParseBytes(pdu).ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "content":
			r[0] = value
		case "origin_server_ts":
			r[1] = value
		case "sender":
			r[2] = value
		case "type":
			r[3] = value
		case "state_key":
			r[4] = value
		case "redacts":
			r[5] = value
		}
		return true
	})
	return r
}

// ClientEvent appends the client-format JSON of an event to buf:
// {content, event_id, origin_server_ts, room_id, sender, type, state_key?, redacts?, unsigned}.
func ClientEvent(buf []byte, in ClientInput) []byte {
	r := clientFields(in.PDU)
	content := r[0].Raw
	if content == "" || r[0].Type != gjson.JSON {
		content = "{}"
	}
	ts := r[1].Int()
	buf = append(buf, `{"content":`...)
	buf = append(buf, content...)
	buf = append(buf, `,"event_id":`...)
	buf = AppendString(buf, in.EventID)
	buf = append(buf, `,"origin_server_ts":`...)
	buf = strconv.AppendInt(buf, ts, 10)
	buf = append(buf, `,"room_id":`...)
	buf = AppendString(buf, in.RoomID)
	buf = append(buf, `,"sender":`...)
	buf = appendRawString(buf, r[2])
	if r[4].Exists() && r[4].Type == gjson.String {
		buf = append(buf, `,"state_key":`...)
		buf = append(buf, r[4].Raw...)
	}
	buf = append(buf, `,"type":`...)
	buf = appendRawString(buf, r[3])
	if r[5].Type == gjson.String {
		buf = append(buf, `,"redacts":`...)
		buf = append(buf, r[5].Raw...)
	} else if rc := r[0].Get("redacts"); r[3].Str == "m.room.redaction" && rc.Type == gjson.String {
		// Room v11+ moved redacts into content; clients still read the top-level key.
		buf = append(buf, `,"redacts":`...)
		buf = append(buf, rc.Raw...)
	}
	buf = append(buf, `,"unsigned":{"age":`...)
	age := in.NowMS - ts
	if age < 0 {
		age = 0
	}
	buf = strconv.AppendInt(buf, age, 10)
	if in.TxnID != "" {
		buf = append(buf, `,"transaction_id":`...)
		buf = AppendString(buf, in.TxnID)
	}
	if in.Membership != "" {
		buf = append(buf, `,"membership":`...)
		buf = AppendString(buf, in.Membership)
	}
	if inner := objectInner(in.Unsigned); len(inner) > 0 {
		buf = append(buf, ',')
		buf = append(buf, inner...)
	}
	buf = append(buf, "}}"...)
	return buf
}

// StrippedState appends the stripped form {content, sender, state_key, type} of a state PDU.
func StrippedState(buf []byte, pdu []byte) []byte {
	r := gjson.GetManyBytes(pdu, "content", "sender", "state_key", "type")
	content := r[0].Raw
	if content == "" {
		content = "{}"
	}
	buf = append(buf, `{"content":`...)
	buf = append(buf, content...)
	buf = append(buf, `,"sender":`...)
	buf = appendRawString(buf, r[1])
	buf = append(buf, `,"state_key":`...)
	buf = appendRawString(buf, r[2])
	buf = append(buf, `,"type":`...)
	buf = appendRawString(buf, r[3])
	return append(buf, '}')
}

func appendRawString(buf []byte, r gjson.Result) []byte {
	if r.Type == gjson.String {
		return append(buf, r.Raw...)
	}
	return append(buf, `""`...)
}

// objectInner returns the members of a JSON object without its braces.
func objectInner(obj []byte) []byte {
	i, j := 0, len(obj)-1
	for i < len(obj) && obj[i] != '{' {
		i++
	}
	for j > i && obj[j] != '}' {
		j--
	}
	if i >= j {
		return nil
	}
	inner := obj[i+1 : j]
	for len(inner) > 0 && (inner[0] == ' ' || inner[0] == '\n' || inner[0] == '\t' || inner[0] == '\r') {
		inner = inner[1:]
	}
	return inner
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// FederationEvent returns the PDU as clients asked for it with the filter's
// event_format "federation": the PDU JSON with its event_id (which room v3+
// PDUs do not carry).
func FederationEvent(pdu []byte, eventID string) []byte {
	if gjson.GetBytes(pdu, "event_id").Exists() || len(pdu) < 2 || pdu[0] != '{' {
		return pdu
	}
	b := make([]byte, 0, len(pdu)+len(eventID)+16)
	b = append(b, `{"event_id":`...)
	b = AppendString(b, eventID)
	if len(pdu) > 2 {
		b = append(b, ',')
	}
	return append(b, pdu[1:]...)
}

// HasEventID reports whether an event object carries an event_id (a full
// event, not stripped state).
func HasEventID(ev []byte) bool { return gjson.GetBytes(ev, "event_id").Exists() }
