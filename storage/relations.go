package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// RelationsQuery selects the events relating to one event.
type RelationsQuery struct {
	RoomID  id.RoomID
	EventID id.EventID
	// RelType and EventType, when set, restrict the relations returned.
	RelType   string
	EventType string
	// Events with Lo < stream_pos <= Hi are returned.
	Lo, Hi int64
	Limit  int
	// Backwards returns newest first.
	Backwards bool
	// Depth is how many levels of relations are followed (1: direct ones only).
	Depth int
}

// ThreadRoot is a thread root with the position of its latest reply.
type ThreadRoot struct {
	EventID   id.EventID
	LatestPos int64
}

// Aggregation is what is bundled in unsigned.m.relations of one event.
type Aggregation struct {
	// ThreadCount is the number of m.thread replies; ThreadLatest the newest one.
	ThreadCount  int
	ThreadLatest id.EventID
	// ThreadParticipated is set when the asking user sent a reply (or the root).
	ThreadParticipated bool
	// Replace is the newest m.replace from the event's own sender.
	Replace *Event
	// References are the event IDs of m.reference relations, oldest first.
	References []id.EventID
}

// RelationStore indexes event relations (content.m.relates_to).
type RelationStore interface {
	// Relations returns the accepted events relating to q.EventID.
	Relations(ctx context.Context, q RelationsQuery) ([]*Event, error)
	// Threads returns a room's thread roots ordered by latest reply, newest
	// first, those whose latest reply is before pos (0: no bound). When
	// participant is set, only threads they started or replied in.
	Threads(ctx context.Context, roomID id.RoomID, participant id.UserID, before int64, limit int) ([]ThreadRoot, error)
	// Aggregations returns the bundled aggregations of the given events for user
	// (events with none are absent from the map).
	Aggregations(ctx context.Context, user id.UserID, evs []*Event) (map[id.EventID]*Aggregation, error)
}
