package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// AccountData is one account data entry; RoomID is empty for global account data.
type AccountData struct {
	RoomID  id.RoomID
	Type    string
	Content json.RawMessage
	// Pos is the account_data stream position of the entry's last write.
	Pos int64
}

// AccountDataStore keeps per-user account data with a persistent stream position.
type AccountDataStore interface {
	// PutAccountData stores content and returns the new account_data stream position.
	PutAccountData(ctx context.Context, user id.UserID, room id.RoomID, typ string, content json.RawMessage) (int64, error)
	// UpdateAccountData reads the current content (nil when unset), lets fn
	// compute the new one and stores it, in one transaction.
	UpdateAccountData(ctx context.Context, user id.UserID, room id.RoomID, typ string, fn func(old json.RawMessage) (json.RawMessage, error)) (int64, error)
	// GetAccountData returns the content; ErrNotFound when unset.
	GetAccountData(ctx context.Context, user id.UserID, room id.RoomID, typ string) (json.RawMessage, error)
	// AccountDataBetween returns user's entries last written in (from, to], oldest first.
	AccountDataBetween(ctx context.Context, user id.UserID, from, to int64) ([]AccountData, error)
	// AccountDataPosition is the latest account_data stream position.
	AccountDataPosition(ctx context.Context) (int64, error)
}

// FilterStore keeps uploaded /sync filters.
type FilterStore interface {
	// CreateFilter stores a filter and returns its ID.
	CreateFilter(ctx context.Context, user id.UserID, filter json.RawMessage) (string, error)
	// GetFilter returns the filter; ErrNotFound if user has none with that ID.
	GetFilter(ctx context.Context, user id.UserID, filterID string) (json.RawMessage, error)
}

// Receipt is the latest receipt of one type by one user in a room (and thread).
type Receipt struct {
	RoomID  id.RoomID
	Type    string
	UserID  id.UserID
	EventID id.EventID
	// ThreadID is empty for unthreaded receipts, "main" or a thread root event ID otherwise.
	ThreadID string
	TS       int64
	Pos      int64
}

// ReceiptStore keeps read receipts with a persistent stream position.
type ReceiptStore interface {
	// PutReceipt replaces the user's receipt of that type (and thread) in the
	// room and returns the new receipt stream position. In the same
	// transaction it marks the user's notifications in the room (in the
	// receipt's thread, or all threads when unthreaded) up to readUpTo (the
	// event's stream position) as read, remembering it so that later-stored
	// notifications up to there are read too, and bumps the notif stream.
	// readUpTo < 0 (position unknown) marks every stored notification read
	// without remembering; 0 marks nothing.
	PutReceipt(ctx context.Context, r Receipt, readUpTo int64) (int64, error)
	// ReceiptEvent returns the event of the user's current receipt of that
	// type and thread in the room; ErrNotFound when there is none.
	ReceiptEvent(ctx context.Context, room id.RoomID, typ string, user id.UserID, thread string) (id.EventID, error)
	// ReceiptsBetween returns receipts written in (from, to] in rooms.
	ReceiptsBetween(ctx context.Context, rooms []id.RoomID, from, to int64) ([]Receipt, error)
	// ReceiptPosition is the latest receipt stream position.
	ReceiptPosition(ctx context.Context) (int64, error)
}

// PushRule is a stored push rule: a user-defined rule, or the user's change
// to a default rule (Default set; only Enabled and Actions are meaningful).
type PushRule struct {
	Kind       string
	RuleID     string
	Priority   int64
	Default    bool
	Enabled    *bool
	Actions    json.RawMessage
	Conditions json.RawMessage
	Pattern    *string
}

// PushRuleStore keeps users' push rules. Every change also records an
// m.push_rules global account data write, so the change reaches /sync.
type PushRuleStore interface {
	// PushRules returns the user's stored rules ordered by kind and priority.
	PushRules(ctx context.Context, user id.UserID) ([]PushRule, error)
	// UpdatePushRules runs fn over the stored rules in one transaction and
	// stores what it returns (replacing every stored rule of the user).
	UpdatePushRules(ctx context.Context, user id.UserID, fn func(rules []PushRule) ([]PushRule, error)) error
}

// Notification is an event that notified a user.
type Notification struct {
	ID        int64
	UserID    id.UserID
	RoomID    id.RoomID
	EventID   id.EventID
	ThreadID  string
	EventPos  int64
	TS        int64
	Highlight bool
	Actions   json.RawMessage
	Read      bool
}

// UnreadCount is a user's unread notification counts in one room thread.
type UnreadCount struct {
	RoomID        id.RoomID
	ThreadID      string
	Notifications int
	Highlights    int
}

// Pusher is an HTTP (or email) pusher of a user.
type Pusher struct {
	UserID            id.UserID
	AppID             string
	PushKey           string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              json.RawMessage
	DeviceID          id.DeviceID
	CreatedTS         int64
}

// PushJob is a notification queued for a push gateway.
type PushJob struct {
	ID            int64
	UserID        id.UserID
	AppID         string
	PushKey       string
	URL           string
	Payload       json.RawMessage
	Attempts      int
	NextAttemptTS int64
}

// NotificationStore keeps notifications, unread counts, pushers and the push queue.
type NotificationStore interface {
	UnreadTotalStore
	// AddNotifications stores notifications and queues jobs for the users'
	// pushers, in one transaction. (New notifications come with their event,
	// which brings the room into /sync; only receipts move the notif stream.)
	AddNotifications(ctx context.Context, ns []Notification, jobs []PushJob) error
	// UnreadCounts returns the user's unread counts per room and thread for rooms.
	UnreadCounts(ctx context.Context, user id.UserID, rooms []id.RoomID) ([]UnreadCount, error)
	// NotifChangedRooms returns rooms whose counts for user were reset by a
	// receipt in (from, to].
	NotifChangedRooms(ctx context.Context, user id.UserID, from, to int64) ([]id.RoomID, error)
	// NotifPosition is the latest notif stream position.
	NotifPosition(ctx context.Context) (int64, error)
	// Notifications lists user's notifications newest first, with ID below
	// before (0: no bound), at most limit, only highlights if onlyHighlight.
	Notifications(ctx context.Context, user id.UserID, before int64, limit int, onlyHighlight bool) ([]Notification, error)

	// Pushers returns the user's pushers.
	Pushers(ctx context.Context, user id.UserID) ([]Pusher, error)
	// PushersOf returns the pushers of users.
	PushersOf(ctx context.Context, users []id.UserID) ([]Pusher, error)
	// SetPusher creates or replaces a pusher; unless appendOthers, pushers of
	// other users with the same app ID and pushkey are deleted.
	SetPusher(ctx context.Context, p Pusher, appendOthers bool) error
	// DeletePusher removes a pusher (and its queued jobs); no error if absent.
	DeletePusher(ctx context.Context, user id.UserID, appID, pushKey string) error

	// DuePushJobs returns up to limit queued jobs due at or before now.
	DuePushJobs(ctx context.Context, now int64, limit int) ([]PushJob, error)
	// NextPushJobTS is the earliest next_attempt_ts in the queue; ErrNotFound when empty.
	NextPushJobTS(ctx context.Context) (int64, error)
	// RetryPushJob records a failed attempt.
	RetryPushJob(ctx context.Context, jobID int64, attempts int, next int64) error
	// DeletePushJob removes a job.
	DeletePushJob(ctx context.Context, jobID int64) error
}

// UnreadTotalStore is the part of NotificationStore push payloads use.
type UnreadTotalStore interface {
	// UnreadTotal counts the user's unread notifications in every room.
	UnreadTotal(ctx context.Context, user id.UserID) (int, error)
}

// Positions is the latest position of every persistent sync stream, read at
// once (a /sync reads them all before filling its response).
type Positions struct {
	Events, AccountData, Receipt, Notif, ToDevice, DeviceList int64
}

// PositionStore reads every stream position in one query.
type PositionStore interface {
	StreamPositions(ctx context.Context) (Positions, error)
}
