package roomserver

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/eventutil"
	"parley/storage"
)

// redact sends an m.room.redaction for spec.Redacts and stores the target's
// redacted form (per the room version's redaction algorithm, via mautrix pdu).
// w's room must be locked.
func (s *Server) redact(ctx context.Context, w *working, spec eventSpec) (id.EventID, error) {
	target, err := s.store.GetEvent(ctx, spec.Redacts)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	if target != nil && target.RoomID != w.roomID {
		return "", fmt.Errorf("%w: event %s is not in this room", ErrBadRequest, spec.Redacts)
	}
	// Client-server API: a user may redact another user's event only with the redact power level.
	if target != nil && target.Sender != spec.Sender && !s.mayRedactOthers(w, spec.Sender) {
		return "", fmt.Errorf("%w: you cannot redact other users' events", ErrForbidden)
	}
	if w.version.RedactsInContent() {
		c := spec.Content
		if len(c) == 0 {
			c = []byte("{}")
		}
		c, err = sjson.SetBytes(c, "redacts", spec.Redacts)
		if err != nil {
			return "", fmt.Errorf("%w: content must be a JSON object", ErrBadRequest)
		}
		spec.Content = c
	}
	ne, err := s.add(w, spec)
	if err != nil {
		return "", err
	}
	if target != nil {
		if err := applyRedaction(w, ne, target); err != nil {
			return "", err
		}
	}
	if _, err := s.commit(ctx, w, nil); err != nil {
		return "", err
	}
	return ne.EventID, nil
}

// isCreator reports whether user is a room creator with infinite power (room v12).
func (s *Server) isCreator(w *working, user id.UserID) bool {
	if !w.version.PrivilegedRoomCreators() {
		return false
	}
	e, ok := w.get(event.StateCreate.Type, "")
	if !ok {
		return false
	}
	if e.pdu.Sender == user {
		return true
	}
	found := false
	gjson.GetBytes(e.pdu.Content, "additional_creators").ForEach(func(_, v gjson.Result) bool {
		if v.Str == string(user) {
			found = true
		}
		return !found
	})
	return found
}

// mayRedactOthers: user has the room's redact power level (or is a v12 creator).
func (s *Server) mayRedactOthers(w *working, user id.UserID) bool {
	pl := event.PowerLevelsEventContent{}
	if e, ok := w.get(event.StatePowerLevels.Type, ""); ok {
		_ = json.Unmarshal(e.pdu.Content, &pl)
	}
	return pl.GetUserLevel(user) >= pl.Redact() || s.isCreator(w, user)
}

// applyRedaction makes ne, an accepted m.room.redaction in w, replace
// target's stored JSON with its redacted form (with redacted_because), and
// the working state's copy when target is current state.
func applyRedaction(w *working, ne *storage.NewEvent, target *storage.Event) error {
	redJSON, red, err := redactStored(w.version, target.JSON)
	if err != nil {
		return fmt.Errorf("redact %s: %w", target.EventID, err)
	}
	ne.Redacts = target.EventID
	ne.RedactedJSON = redJSON
	because := eventutil.ClientEvent(nil, eventutil.ClientInput{PDU: ne.JSON, EventID: string(ne.EventID), RoomID: string(w.roomID), NowMS: ne.OriginTS})
	ne.RedactedUnsigned = append(append([]byte(`{"redacted_because":`), because...), '}')
	if target.StateKey != nil {
		k := storage.StateKeyTuple{Type: target.Type, StateKey: *target.StateKey}
		if cur, ok := w.get(k.Type, k.StateKey); ok && cur.id == target.EventID {
			w.overlay[k] = stateEntry{id: cur.id, pdu: red, ref: cur.ref}
		}
	}
	return nil
}

// redactsOf is the event an m.room.redaction names: content.redacts from
// room version 11 on, the top-level redacts before.
func redactsOf(p *pdu.PDU) id.EventID {
	if r := gjson.GetBytes(p.Content, "redacts").Str; r != "" {
		return id.EventID(r)
	}
	if p.Redacts != nil {
		return *p.Redacts
	}
	return ""
}

// remoteRedactionTarget returns the stored event an accepted redaction from
// another server may redact: one in the same room, sent from the
// redaction's server or redacted by a sender with the redact power level.
// A target in another room soft-fails the redaction (ok false); an unknown
// target, or one the sender may not redact, is left as it is (nil).
func (s *Server) remoteRedactionTarget(ctx context.Context, w *working, p *pdu.PDU) (target *storage.Event, ok bool, err error) {
	targetID := redactsOf(p)
	if targetID == "" {
		return nil, true, nil
	}
	target, err = s.store.GetEvent(ctx, targetID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, true, nil
	} else if err != nil {
		return nil, false, err
	}
	if target.RoomID != w.roomID {
		return nil, false, nil
	}
	if target.Rejected || (target.Sender.Homeserver() != p.Sender.Homeserver() && !s.mayRedactOthers(w, p.Sender)) {
		return nil, true, nil
	}
	return target, true, nil
}
