package stateres

import (
	"errors"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
)

// errNoKeys is returned by the default key getter: the only auth rule that
// needs a server key during state resolution is the restricted join signature
// check (5.2.1), and Resolver.GetKey was not set.
var errNoKeys = errors.New("stateres: no key getter configured")

func noKeys(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
	return "", time.Time{}, errNoKeys
}

// getEvents serves eventauth's event lookups (the m.room.create event of room
// version 12 rooms, found from the room ID) from the graph, fetching events it
// has not loaded yet. Missing events are left out of the result, as eventauth
// expects.
func (g *graph) getEvents(ids []id.EventID) ([]*pdu.PDU, error) {
	if err := g.load(ids); err != nil {
		if g.err == nil {
			g.err = err
		}
		return nil, err
	}
	out := make([]*pdu.PDU, 0, len(ids))
	for _, evID := range ids {
		if ev := g.get(evID); ev != nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// iterativeAuthChecks applies the iterative auth checks algorithm: each event
// in order is authorised against state (updated in place) and, if allowed,
// becomes the state for its key. Auth state the current state lacks is taken
// from the event's own auth_events, unless they were rejected.
func (g *graph) iterativeAuthChecks(state StateMap, events []int32) error {
	getKey := g.getKey
	if getKey == nil {
		getKey = noKeys
	}
	for _, i := range events {
		ev := g.nodes[i].ev
		if ev == nil || ev.StateKey == nil {
			continue
		}
		selection := ev.AuthEventSelection(g.version)
		fromAuthEvents := make(map[StateKey]*pdu.PDU, len(ev.AuthEvents))
		for _, a := range g.authOf(i) {
			ae := g.nodes[a].ev
			if ae.StateKey != nil && !ae.InternalMeta.Rejected {
				fromAuthEvents[StateKey{Type: ae.Type, StateKey: *ae.StateKey}] = ae
			}
		}
		authEvents := make([]*pdu.PDU, 0, len(selection))
		sameRoom := true
		for _, key := range selection {
			var chosen *pdu.PDU
			if evID, ok := state[key]; ok {
				// A state map entry pointing at an event of another key (or a
				// message event) is ignored rather than trusted.
				if se := g.get(evID); se != nil && se.StateKey != nil && se.Type == key.Type && *se.StateKey == key.StateKey {
					chosen = se
				}
			}
			if chosen == nil {
				chosen = fromAuthEvents[key]
			}
			if chosen != nil {
				// Auth rule 3.4, which eventauth applies only to an event's
				// own auth_events: every auth event must be in the same room.
				sameRoom = sameRoom && chosen.RoomID == ev.RoomID
				authEvents = append(authEvents, chosen)
			}
		}
		if !sameRoom {
			continue
		}
		err := authrules.Authorize(g.version, ev, authEvents, g.getEvents, getKey)
		if g.err != nil {
			return g.err
		}
		if err == nil {
			state[StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = g.nodes[i].id
		}
	}
	return nil
}
