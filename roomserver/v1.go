package roomserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// Room versions 1 and 2 use pdu.RoomV1PDU: event IDs are chosen by the
// origin server ("$opaque:server") and prev_events/auth_events are
// [event_id, {"sha256": reference hash}] pairs. Internally the roomserver
// keeps every event in the v3+ pdu.PDU shape (what eventauth takes), plus the
// reference hash of v1 events so later events can point at them.

// isV1 reports whether events of room version v are RoomV1PDUs.
func isV1(v id.RoomVersion) bool { return v.EventIDFormat() == id.EventIDFormatCustom }

// v1AsPDU returns the v3+ shape of a v1 event, for the auth rules and the state cache.
func v1AsPDU(v *pdu.RoomV1PDU) *pdu.PDU {
	p := &pdu.PDU{
		Content: v.Content, Depth: v.Depth, Hashes: v.Hashes, OriginServerTS: v.OriginServerTS,
		Redacts: v.Redacts, RoomID: v.RoomID, Sender: v.Sender, Signatures: v.Signatures,
		StateKey: v.StateKey, Type: v.Type, Unsigned: v.Unsigned,
		AuthEvents: make([]id.EventID, len(v.AuthEvents)), PrevEvents: make([]id.EventID, len(v.PrevEvents)),
	}
	for i, r := range v.AuthEvents {
		p.AuthEvents[i] = r.ID
	}
	for i, r := range v.PrevEvents {
		p.PrevEvents[i] = r.ID
	}
	p.InternalMeta.EventID = v.EventID
	return p
}

// parseEvent parses a stored event of room version v. For v1/v2 it also
// returns the event's reference hash.
func parseEvent(v id.RoomVersion, b []byte) (*pdu.PDU, []byte, error) {
	if !isV1(v) {
		p, err := parsePDU(b)
		return p, nil, err
	}
	var e pdu.RoomV1PDU
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, nil, err
	}
	ref, err := e.GetReferenceHash(v)
	if err != nil {
		return nil, nil, fmt.Errorf("reference hash: %w", err)
	}
	return v1AsPDU(&e), ref[:], nil
}

// buildV1 turns the v3+ shaped p (with auth events chosen) into a signed
// RoomV1PDU. It returns the event ID, the stored JSON and the reference hash.
func (s *Server) buildV1(w *working, p *pdu.PDU, auth []stateEntry) (id.EventID, []byte, []byte, error) {
	v := &pdu.RoomV1PDU{
		Content: p.Content, Depth: p.Depth, OriginServerTS: p.OriginServerTS, Redacts: p.Redacts,
		RoomID: p.RoomID, Sender: p.Sender, StateKey: p.StateKey, Type: p.Type,
		EventID:    id.EventID("$" + randomString(18) + ":" + s.serverName),
		AuthEvents: make([]pdu.V1EventReference, 0, len(auth)),
		PrevEvents: make([]pdu.V1EventReference, 0, len(w.extremities)),
	}
	for _, e := range auth {
		v.AuthEvents = append(v.AuthEvents, pdu.V1EventReference{ID: e.id, Hashes: pdu.Hashes{SHA256: e.ref}})
	}
	for _, e := range w.extremities {
		v.PrevEvents = append(v.PrevEvents, pdu.V1EventReference{ID: e, Hashes: pdu.Hashes{SHA256: w.refs[e]}})
	}
	if err := v.Sign(w.version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return "", nil, nil, fmt.Errorf("%w: event is not valid canonical JSON: %v", ErrBadRequest, err)
	}
	ref, err := v.GetReferenceHash(w.version)
	if err != nil {
		return "", nil, nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", nil, nil, err
	}
	p.Hashes, p.Signatures = v.Hashes, v.Signatures
	p.InternalMeta.EventID = v.EventID
	return v.EventID, raw, ref[:], nil
}

// redactStored returns the redacted form of a stored event's JSON.
func redactStored(v id.RoomVersion, b []byte) ([]byte, *pdu.PDU, error) {
	if isV1(v) {
		var e pdu.RoomV1PDU
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, nil, err
		}
		red := e.Clone().Redact(v)
		out, err := json.Marshal(red)
		return out, v1AsPDU(red), err
	}
	p, err := parsePDU(b)
	if err != nil {
		return nil, nil, err
	}
	red := p.Clone().Redact(v)
	out, err := json.Marshal(red)
	return out, red, err
}

func init() {
	// eventauth asks the create event for its ID (join rule 5.3.1). A v1/v2
	// event cannot compute its ID from the v3+ shape, so let mautrix use the ID
	// the roomserver records in InternalMeta. The roomserver only ever sets
	// InternalMeta.EventID to an event's real ID, so v3+ events are unaffected.
	pdu.UseInternalMetaForGetEventID = true
}

// parseRemoteV1 is parseRemote for room versions 1 and 2: the event ID is
// the event's own event_id, and the event is kept in its v1 JSON shape.
func (s *Server) parseRemoteV1(v id.RoomVersion, raw []byte) (*remoteEvent, error) {
	if len(raw) > maxEventBytes {
		return nil, fmt.Errorf("%w: event larger than %d bytes", ErrTooLarge, maxEventBytes)
	}
	var e pdu.RoomV1PDU
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("%w: invalid PDU: %v", ErrBadRequest, err)
	}
	if e.Type == "" || e.Sender == "" || e.Content == nil {
		return nil, fmt.Errorf("%w: PDU lacks type, sender or content", ErrBadRequest)
	}
	if _, _, err := e.Sender.ParseAndValidateRelaxed(); err != nil {
		return nil, fmt.Errorf("%w: invalid sender %q", ErrBadRequest, e.Sender)
	}
	if _, _, server := id.ParseCommonIdentifier(e.EventID); len(e.EventID) < 2 || e.EventID[0] != '$' || server == "" {
		return nil, fmt.Errorf("%w: invalid event_id %q", ErrBadRequest, e.EventID)
	}
	e.Unsigned = nil
	if err := s.verifyV1Signature(v, raw, &e, e.Sender.Homeserver()); err != nil {
		return nil, fmt.Errorf("%w: signature of %s: %v", ErrForbidden, e.Sender.Homeserver(), err)
	}
	redacted := !v1ContentHashMatches(raw, &e)
	if redacted {
		s.log.Info("content hash mismatch, redacting", zap.String("event_id", string(e.EventID)))
		e.Redact(v)
	}
	ref, err := e.GetReferenceHash(v)
	if err != nil {
		return nil, fmt.Errorf("%w: reference hash: %v", ErrBadRequest, err)
	}
	// Keep the JSON as received (its signatures cover it), without unsigned.
	out, err := sjson.DeleteBytes(raw, "unsigned")
	if redacted {
		out, err = json.Marshal(&e)
	}
	if err != nil {
		return nil, err
	}
	return &remoteEvent{p: v1AsPDU(&e), id: e.EventID, json: out, ref: ref[:]}, nil
}

// parseStored parses a stored event of room version v for the auth rules
// and state resolution (event ID and rejected flag set).
func parseStored(v id.RoomVersion, e *storage.Event) (*pdu.PDU, error) {
	p, _, err := parseEvent(v, e.JSON)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", e.EventID, err)
	}
	p.InternalMeta.EventID = e.EventID
	p.InternalMeta.Rejected = e.Rejected
	return p, nil
}

// refIDs returns the event IDs of a prev_events or auth_events list in
// either shape: IDs (v3+) or [ID, hashes] pairs (v1/v2).
func refIDs(list gjson.Result) []id.EventID {
	var out []id.EventID
	list.ForEach(func(_, v gjson.Result) bool {
		if v.IsArray() {
			v = v.Get("0")
		}
		if v.Str != "" {
			out = append(out, id.EventID(v.Str))
		}
		return true
	})
	return out
}

// stateResVersion is the room version whose state resolution algorithm
// resolves a room of version v. State resolution v1 (room versions 1 and
// 2) is not implemented; those rooms are resolved with v2, whose auth rules
// are the same as room version 2's.
func stateResVersion(v id.RoomVersion) id.RoomVersion {
	if v.StateResVersion() == id.StateResV1 {
		return id.RoomV2
	}
	return v
}

// v1Template turns a v3+ shaped membership template into its v1/v2 form:
// prev_events and auth_events as [ID, hashes] pairs, without event_id (the
// joining server chooses it).
func v1Template(p *pdu.PDU, refs map[id.EventID][]byte) (jsontext.Value, error) {
	pair := func(ids []id.EventID) []any {
		out := make([]any, 0, len(ids))
		for _, i := range ids {
			out = append(out, []any{i, map[string]any{"sha256": base64.RawStdEncoding.EncodeToString(refs[i])}})
		}
		return out
	}
	return json.Marshal(map[string]any{
		"room_id": p.RoomID, "sender": p.Sender, "type": p.Type, "state_key": p.StateKey, "content": p.Content,
		"origin_server_ts": p.OriginServerTS, "depth": p.Depth, "origin": p.Sender.Homeserver(),
		"prev_events": pair(p.PrevEvents), "auth_events": pair(p.AuthEvents),
	})
}

// signV1Template signs a v1/v2 membership template as our own event, with a
// fresh event ID of this server.
func (s *Server) signV1Template(tmpl []byte, version id.RoomVersion, content []byte) (*pdu.PDU, []byte, error) {
	var e pdu.RoomV1PDU
	if err := json.Unmarshal(tmpl, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: membership template: %v", ErrRemote, err)
	}
	e.Content = content
	e.EventID = id.EventID("$" + randomString(18) + ":" + s.serverName)
	e.OriginServerTS = nowMS()
	e.Hashes, e.Signatures, e.Unsigned = nil, nil, nil
	if err := e.Sign(version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return nil, nil, err
	}
	raw, err := json.Marshal(&e)
	if err != nil {
		return nil, nil, err
	}
	return v1AsPDU(&e), raw, nil
}

// countersignV1 adds this server's signature to a v1/v2 event (invites).
func (s *Server) countersignV1(version id.RoomVersion, raw []byte) ([]byte, error) {
	var e pdu.RoomV1PDU
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	e.Unsigned = nil
	if err := e.Sign(version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return nil, err
	}
	return json.Marshal(&e)
}

// v1KeptKeys are the top-level keys the redaction algorithm of room versions
// 1 and 2 keeps.
var v1KeptKeys = []string{"event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
	"depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts", "membership"}

// verifyV1Signature checks the signature of server on a v1/v2 event over
// the event's own JSON (redacted, canonical), not over a re-encoding of the
// parsed event: the JSON may hold shapes the parsed form does not keep
// exactly (for example an empty hashes object in prev_events).
func (s *Server) verifyV1Signature(v id.RoomVersion, raw []byte, e *pdu.RoomV1PDU, server string) error {
	var obj map[string]jsontext.Value
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	red := make(map[string]jsontext.Value, len(v1KeptKeys))
	for _, k := range v1KeptKeys {
		if val, ok := obj[k]; ok && k != "signatures" {
			red[k] = val
		}
	}
	if c, ok := red["content"]; ok {
		red["content"] = pdu.RedactContent(e.Type, c, v)
	}
	msg, err := json.Marshal(red)
	if err != nil {
		return err
	}
	canon := jsontext.Value(msg)
	if err := canonicaljson.Canonicalize(&canon); err != nil {
		return err
	}
	verified := false
	for keyID, sig := range e.Signatures[server] {
		key, _, err := s.getKey(server, keyID, time.UnixMilli(e.OriginServerTS))
		if err != nil {
			return fmt.Errorf("key %s of %s: %w", keyID, server, err)
		} else if key == "" {
			return fmt.Errorf("key %s of %s not found", keyID, server)
		}
		if err := signutil.VerifyJSONCanonical(key, sig, []byte(canon)); err != nil {
			return fmt.Errorf("signature with key %s: %w", keyID, err)
		}
		verified = true
	}
	if !verified {
		return fmt.Errorf("no signature of %s", server)
	}
	return nil
}

// v1ContentHashMatches checks a v1/v2 event's content hash over the JSON as
// received (see verifyV1Signature).
func v1ContentHashMatches(raw []byte, e *pdu.RoomV1PDU) bool {
	if e.Hashes == nil || len(e.Hashes.SHA256) == 0 {
		return false
	}
	var obj map[string]jsontext.Value
	if err := json.Unmarshal(raw, &obj); err != nil {
		return false
	}
	delete(obj, "signatures")
	delete(obj, "unsigned")
	delete(obj, "hashes")
	msg, err := json.Marshal(obj)
	if err != nil {
		return false
	}
	canon := jsontext.Value(msg)
	if err := canonicaljson.Canonicalize(&canon); err != nil {
		return false
	}
	sum := sha256.Sum256(canon)
	return hmac.Equal(sum[:], e.Hashes.SHA256)
}
