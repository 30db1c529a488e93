package roomserver

import (
	"encoding/json/v2"
	"fmt"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
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
