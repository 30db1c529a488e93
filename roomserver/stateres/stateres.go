// Package stateres implements the Matrix state resolution algorithm v2 (room
// versions 2–11) and v2.1 (room version 12, MSC4297), as specified in the room
// versions appendix of the Matrix specification ("State resolution" in
// /rooms/v2 and /rooms/v12).
//
// The roomserver calls it at DAG forks: the state before an event with several
// prev_events is the resolution of the states after each of them:
//
//	before, err := stateres.Resolve(ctx, roomVersion, []stateres.StateMap{after1, after2}, fetchEvents)
//
// The package is pure: it does no I/O of its own. Events are obtained through a
// FetchFunc supplied by the caller, and authorisation rules are delegated to
// mautrix's federation/eventauth. It is safe to call Resolve concurrently as
// long as the FetchFunc is.
package stateres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// StateKey identifies one piece of room state: an (event type, state key) pair.
type StateKey = pdu.StateKey

// StateMap is a room state: the event ID of the current event for each state key.
type StateMap = map[StateKey]id.EventID

// FetchFunc returns the events with the given IDs. Events it does not have are
// left out of the result (or returned as nil); the order of the result does
// not matter. Each returned event should have InternalMeta.EventID set (it is
// computed from the reference hash otherwise, which only works for room
// version 3 and later) and InternalMeta.Rejected set if the event was rejected
// on receipt. The resolver never modifies the returned events.
//
// Room version 2 events must be passed in the pdu.PDU shape (auth_events and
// prev_events as plain ID lists) with InternalMeta.EventID set, and the
// process must set pdu.UseInternalMetaForGetEventID, without which mautrix's
// auth rules cannot identify the create event of such rooms.
//
// An error aborts the resolution and is returned from Resolve.
type FetchFunc func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error)

// ErrUnsupportedRoomVersion is returned for room versions that are unknown or
// that use state resolution v1 (room version 1).
var ErrUnsupportedRoomVersion = errors.New("stateres: unsupported room version")

// Resolver resolves conflicting room states. The zero value is not usable:
// Fetch must be set.
type Resolver struct {
	// Fetch loads events (state events and their auth chains) by ID.
	Fetch FetchFunc
	// GetKey, if set, is used to verify the signature of the authorising server
	// on restricted-room joins (auth rule 5.2.1) during the iterative auth
	// checks. When nil, such joins fail that check and are left out of the
	// resolved state. No other auth rule needs keys.
	GetKey pdu.GetKeyFunc
}

// Resolve is shorthand for Resolver{Fetch: fetch}.Resolve.
func Resolve(ctx context.Context, roomVersion id.RoomVersion, stateSets []StateMap, fetch FetchFunc) (StateMap, error) {
	return (&Resolver{Fetch: fetch}).Resolve(ctx, roomVersion, stateSets)
}

// Resolve computes the resolution of stateSets (the states after each of an
// event's prev_events) for a room of the given version, and returns a new
// state map. The input maps are not modified. The result is deterministic: it
// does not depend on the order of stateSets or of the fetched events.
//
// Rejected events (InternalMeta.Rejected) in the full conflicted set are
// authorised afresh like any other, as the spec's "Rejected events" section
// requires (Synapse instead keeps them out); the flag only stops an event
// being used as a fallback auth event in the iterative auth checks.
//
// Events that the FetchFunc cannot find are ignored, as Synapse does: a
// conflicted state event that cannot be loaded takes no part in resolution,
// and a missing auth event is treated as absent from the auth chain.
func (r *Resolver) Resolve(ctx context.Context, roomVersion id.RoomVersion, stateSets []StateMap) (StateMap, error) {
	if !roomVersion.IsKnown() || roomVersion.StateResVersion() == id.StateResV1 {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedRoomVersion, roomVersion)
	}
	if r.Fetch == nil {
		return nil, errors.New("stateres: Resolver.Fetch is nil")
	}
	v21 := roomVersion.StateResVersion() == id.StateResV2_1

	unconflicted, conflicted := partition(stateSets)
	if len(conflicted) == 0 {
		return unconflicted, nil
	}

	g := newGraph(ctx, roomVersion, r.Fetch, r.GetKey)
	// The auth difference needs the full auth chain of every state set, so
	// load the closure of all state events once; everything below then works
	// on the in-memory graph.
	var all []id.EventID
	seen := make(map[id.EventID]struct{})
	for _, set := range stateSets {
		for _, evID := range set {
			if _, ok := seen[evID]; !ok {
				seen[evID] = struct{}{}
				all = append(all, evID)
			}
		}
	}
	slices.Sort(all)
	if err := g.loadClosure(all); err != nil {
		return nil, err
	}

	conflictedIdx := g.present(conflicted)
	full := newNodeSet(len(g.nodes))
	for _, i := range conflictedIdx {
		full.add(i)
	}
	for _, i := range g.authDifference(stateSets, unconflicted) {
		full.add(i)
	}
	if v21 {
		// v2.1: the full conflicted set also contains the conflicted state
		// subgraph, so that events needed to authorise conflicted events
		// during the iterative auth checks (which start from an empty state)
		// are themselves replayed.
		for _, i := range g.conflictedSubgraph(conflictedIdx) {
			full.add(i)
		}
	}
	fullList := full.sorted()

	// Step 1: power events in the full conflicted set, plus the events of
	// their auth chains that are in the full conflicted set, in reverse
	// topological power ordering.
	var powerEvents []int32
	for _, i := range fullList {
		if g.nodes[i].isPowerEvent() {
			powerEvents = append(powerEvents, i)
		}
	}
	picked := g.powerEventsWithAuthChains(powerEvents, full)
	step1, err := g.reverseTopologicalPowerOrder(picked)
	if err != nil {
		return nil, err
	}

	// Step 2: iterative auth checks from the unconflicted state map (v2) or
	// from an empty state map (v2.1).
	partial := make(StateMap)
	if !v21 {
		partial = maps.Clone(unconflicted)
	}
	if err := g.iterativeAuthChecks(partial, step1); err != nil {
		return nil, err
	}

	// Step 3: the remaining events, in mainline ordering based on the power
	// levels event of the partially resolved state.
	pickedSet := newNodeSet(len(g.nodes))
	for _, i := range picked {
		pickedSet.add(i)
	}
	var rest []int32
	for _, i := range fullList {
		if !pickedSet.has(i) {
			rest = append(rest, i)
		}
	}
	step3, err := g.mainlineOrder(rest, partial[StateKey{Type: "m.room.power_levels"}])
	if err != nil {
		return nil, err
	}

	// Step 4: iterative auth checks on the partially resolved state.
	if err := g.iterativeAuthChecks(partial, step3); err != nil {
		return nil, err
	}

	// Step 5: the unconflicted state map wins.
	maps.Copy(partial, unconflicted)
	return partial, nil
}

// partition splits the state sets into the unconflicted state map (keys
// present in every set with the same event) and the conflicted state set (every
// other event), returned sorted and without duplicates.
func partition(stateSets []StateMap) (StateMap, []id.EventID) {
	unconflicted := make(StateMap)
	if len(stateSets) == 0 {
		return unconflicted, nil
	}
	conflictedSet := make(map[id.EventID]struct{})
	keys := make(map[StateKey]struct{})
	for _, set := range stateSets {
		for k := range set {
			keys[k] = struct{}{}
		}
	}
	for k := range keys {
		first, inFirst := stateSets[0][k]
		same := inFirst
		for _, set := range stateSets[1:] {
			if v, ok := set[k]; !ok || v != first {
				same = false
				break
			}
		}
		if same {
			unconflicted[k] = first
			continue
		}
		for _, set := range stateSets {
			if v, ok := set[k]; ok {
				conflictedSet[v] = struct{}{}
			}
		}
	}
	conflicted := slices.Sorted(maps.Keys(conflictedSet))
	return unconflicted, conflicted
}
