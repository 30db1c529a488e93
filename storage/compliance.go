package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Hold is a compliance hold on a room or on a user's events.
type Hold struct {
	// Kind is "room" or "user".
	Kind      string
	Target    string
	CreatedTS int64
	CreatedBy id.UserID
}

// ComplianceStore keeps compliance holds and the original content of held
// events that were redacted. The event write keeps the original of an event
// under hold (its room or its sender is held) before a redaction replaces it.
type ComplianceStore interface {
	// PutHold places a hold (idempotent).
	PutHold(ctx context.Context, h Hold) error
	// DeleteHold lifts a hold; ErrNotFound if there is none.
	DeleteHold(ctx context.Context, kind, target string) error
	// ListHolds lists every hold.
	ListHolds(ctx context.Context) ([]Hold, error)
	// HeldOriginals returns the kept original PDUs among ids.
	HeldOriginals(ctx context.Context, ids []id.EventID) (map[id.EventID][]byte, error)
}
