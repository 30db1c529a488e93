package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// AccountFilter selects accounts for the admin user list.
type AccountFilter struct {
	// Name matches user IDs and display names containing it (case-insensitive).
	Name string
	// Guests and Deactivated include those accounts; Admins, when non-nil,
	// keeps only admins (true) or non-admins (false).
	Guests      bool
	Deactivated bool
	Admins      *bool
	// OrderBy is "name" (user ID), "displayname", "creation_ts" or "admin"; Desc reverses it.
	OrderBy string
	Desc    bool
	From    int
	Limit   int
}

// AccountInfo is an account with its profile, for the admin API.
type AccountInfo struct {
	Account
	DisplayName string
	AvatarURL   string
}

// Report is a user's report of an event, a room or a user.
type Report struct {
	ID         int64
	ReceivedTS int64
	// Kind is "event", "room" or "user".
	Kind         string
	RoomID       id.RoomID
	EventID      id.EventID
	TargetUserID id.UserID
	UserID       id.UserID
	Reason       *string
	Score        *int64
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID       int64
	TS       int64
	Action   string
	UserID   id.UserID
	Target   string
	DeviceID id.DeviceID
	IP       string
	Details  json.RawMessage
}

// AuditFilter selects audit entries; zero fields match everything. From
// and To bound the timestamp (ms, inclusive); After pages by entry ID.
type AuditFilter struct {
	UserID   id.UserID
	Action   string
	From, To int64
	After    int64
	Limit    int
}

// AdminStore holds what the admin API reads and writes beyond the other stores.
type AdminStore interface {
	// ListAccounts returns a page of accounts and the total matching.
	ListAccounts(ctx context.Context, f AccountFilter) ([]AccountInfo, int, error)
	// SetAccountAdmin sets the admin flag; ErrNotFound for unknown accounts.
	SetAccountAdmin(ctx context.Context, userID id.UserID, admin bool) error
	// ReactivateAccount clears the deactivated flag; ErrNotFound for unknown accounts.
	ReactivateAccount(ctx context.Context, userID id.UserID) error
	// ListRooms returns every room, ordered by room ID.
	ListRooms(ctx context.Context) ([]Room, error)
	// CreateReport stores a report and returns its ID.
	CreateReport(ctx context.Context, r Report) (int64, error)
	// ListReports returns a page of reports (newest first unless oldestFirst) and the total.
	ListReports(ctx context.Context, from, limit int, oldestFirst bool, roomID id.RoomID, userID id.UserID) ([]Report, int, error)
	// GetReport returns one report; ErrNotFound if unknown.
	GetReport(ctx context.Context, reportID int64) (*Report, error)
	// DeleteReport removes a report; ErrNotFound if unknown.
	DeleteReport(ctx context.Context, reportID int64) error
	// AppendAudit appends an entry to the audit log. Nothing updates or deletes entries.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// ListAudit returns audit entries matching f, oldest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// ServerNoticeRoom returns the user's server notices room; ErrNotFound if none.
	ServerNoticeRoom(ctx context.Context, userID id.UserID) (id.RoomID, error)
	// SetServerNoticeRoom records the user's server notices room.
	SetServerNoticeRoom(ctx context.Context, userID id.UserID, roomID id.RoomID) error
}

// RegistrationTokenAdminStore manages registration tokens for the admin API
// (creation and lookup are in RegistrationTokenStore).
type RegistrationTokenAdminStore interface {
	// ListRegistrationTokens returns every token, ordered by token.
	ListRegistrationTokens(ctx context.Context) ([]RegistrationToken, error)
	// UpdateRegistrationToken sets uses_allowed (when setUses) and
	// expiry_time (when setExpiry); nil values mean unlimited / never.
	// ErrNotFound if the token is unknown.
	UpdateRegistrationToken(ctx context.Context, token string, setUses bool, uses *int, setExpiry bool, expiry *int64) (*RegistrationToken, error)
	// DeleteRegistrationToken removes a token; ErrNotFound if unknown.
	DeleteRegistrationToken(ctx context.Context, token string) error
}

// Restrictions are an admin's restrictions on a local user.
type Restrictions struct {
	Locked       bool
	Suspended    bool
	ShadowBanned bool
}

// TopicModeration is the ChangeFeed topic of user restrictions, room blocks
// and rate-limit overrides: every RestrictionStore write of them announces it.
const TopicModeration = "moderation"

// ChangeFeed tells every process sharing the database about changes to
// state that processes cache in memory. Writes announce their topic when
// they commit (PostgreSQL: NOTIFY); SQLite has a single process, so its feed
// never reports anything.
type ChangeFeed interface {
	// ListenChanges calls f with the topic of every change committed by any
	// process (this one included), and with "" when changes may have been
	// missed: once listening has started and after each reconnection, so the
	// caller reloads everything then. It returns when ctx ends; on SQLite at once.
	ListenChanges(ctx context.Context, f func(topic string)) error
	// AnnounceChange announces topic to every listening process now (outside
	// any transaction: for changes already committed). A no-op on SQLite.
	AnnounceChange(ctx context.Context, topic string) error
	// SharedDatabase reports whether other processes may share the database
	// (PostgreSQL), so that announcing changes is worth its cost.
	SharedDatabase() bool
}

// RestrictionStore keeps user restrictions.
type RestrictionStore interface {
	ChangeFeed
	// SetRestrictions replaces a user's restrictions.
	SetRestrictions(ctx context.Context, userID id.UserID, r Restrictions) error
	// AllRestrictions returns every user with a restriction.
	AllRestrictions(ctx context.Context) (map[id.UserID]Restrictions, error)
	// SetRoomBlocked blocks (by is the admin) or unblocks a room.
	SetRoomBlocked(ctx context.Context, roomID id.RoomID, blocked bool, by id.UserID) error
	// BlockedRooms returns every blocked room and who blocked it.
	BlockedRooms(ctx context.Context) (map[id.RoomID]id.UserID, error)
	// SetRateLimitOverride stores (or, with nil, removes) a user's message rate override.
	SetRateLimitOverride(ctx context.Context, userID id.UserID, o *RateLimitOverride) error
	// RateLimitOverrides returns every override.
	RateLimitOverrides(ctx context.Context) (map[id.UserID]RateLimitOverride, error)
	// SetAwaitingApproval marks (or, with false, approves) a newly registered account.
	SetAwaitingApproval(ctx context.Context, userID id.UserID, awaiting bool) error
	// AwaitingApproval reports whether the account still awaits approval.
	AwaitingApproval(ctx context.Context, userID id.UserID) (bool, error)
	// ErasedUsers returns which of users were deactivated with erase
	// (DeactivateAccount with erase records them).
	ErasedUsers(ctx context.Context, users []id.UserID) (map[id.UserID]bool, error)
}

// RateLimitOverride is a user's own message rate limit.
type RateLimitOverride struct {
	MessagesPerSecond float64
	BurstCount        int
}
