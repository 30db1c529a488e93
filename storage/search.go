package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// SearchQuery is a full-text query over room events.
type SearchQuery struct {
	// Term is the user's search term (plain words; quoting and operators are not interpreted).
	Term string
	// Rooms limits the search to these rooms; it must not be empty.
	Rooms []id.RoomID
	// Keys limits matches to these content keys ("content.body",
	// "content.name", "content.topic"); empty means all three.
	Keys []string
	// Senders and NotSenders filter by sender when non-nil / non-empty.
	Senders    []id.UserID
	NotSenders []id.UserID
	// ByRank orders by relevance (best first), else by recency (newest first).
	ByRank bool
	// Offset and Limit page through the ordered hits.
	Offset, Limit int
}

// SearchHit is one matching event.
type SearchHit struct {
	EventID   id.EventID
	RoomID    id.RoomID
	StreamPos int64
	// Rank is the relevance of the match (higher is better).
	Rank float64
}

// SearchStore is the full-text index over room events. Redacted events
// drop out of it in the redaction's transaction. PostgreSQL indexes events
// in the transaction that stores them; SQLite indexes them afterwards
// (CatchUpSearch, which SearchEvents runs first, so results are current).
type SearchStore interface {
	// SearchEvents returns one page of hits of q and the number of hits in total.
	SearchEvents(ctx context.Context, q SearchQuery) ([]SearchHit, int, error)
	// CatchUpSearch indexes events stored since its last run (SQLite; a no-op on PostgreSQL).
	CatchUpSearch(ctx context.Context) error
}

// DirectoryUser is a user directory search result.
type DirectoryUser struct {
	UserID      id.UserID
	DisplayName string
	AvatarURL   string
}

// UserDirectoryStore finds users for the user directory.
type UserDirectoryStore interface {
	// SearchUserDirectory returns up to limit users whose user ID or display
	// name contains term (case-insensitive) and who are joined to a room the
	// requester is joined to or to a public room, plus, when localServer is
	// not empty, every active non-guest account of that server. limited reports
	// that more users matched.
	SearchUserDirectory(ctx context.Context, requester id.UserID, term string, limit int, localServer string) (users []DirectoryUser, limited bool, err error)
}
