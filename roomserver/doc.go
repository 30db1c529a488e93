// Design notes
//
// Storage (storage.RoomStore, tables in migrations track "rooms"): every event
// is stored once, as its signed PDU JSON (the redacted form after a
// redaction), in the events table. Its stream_pos, assigned inside the write
// transaction, is the global order of persistence and the /sync PDU stream
// position; on PostgreSQL an advisory transaction lock serialises event
// writes so positions become visible in order. Each event records the state
// groups before and after it. A state group is a delta (one entry) on its
// predecessor, or a full snapshot every 32 steps, so the state at any event
// is one recursive query. current_state indexes the current state (with the
// membership of m.room.member rows, for "rooms of a user"); forward
// extremities, prev-event edges, client transaction IDs and aliases have
// their own tables.
//
// Writes: a local event is built on a cached view of its room (current
// state as parsed PDUs, forward extremities, depth), signed, authorised with
// mautrix eventauth against the state it will follow, and persisted in one
// transaction. Writes into one room are serialised by the room's lock (so the
// local DAG never forks); rooms proceed in parallel. A write checks that the
// room's forward extremities are still the ones it built on
// (storage.ErrStale): another process sharing a PostgreSQL database may have
// written meanwhile, and the write is then rebuilt on fresh state.
// Committed events are published to Deps.OnEvent outside the room lock, in
// commit order.
//
// Forks: events from other servers may give a room several forward
// extremities. ResolveState resolves the states after them with
// roomserver/stateres; federation input persists such events with the
// resolved state (see storage.NewEvent.UpdateCurrentState).

package roomserver
