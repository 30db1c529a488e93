package storage

import "context"

// Store is every kind of storage Parley has. Each component takes only the
// interfaces it needs from it.
type Store interface {
	AccountStore
	RoomStore
	RelationStore
	DirectoryStore
	UIAStore
	RegistrationTokenStore
	ProfileStore
	MediaStore
	AccountDataStore
	FilterStore
	ReceiptStore
	PushRuleStore
	NotificationStore
	SearchStore
	UserDirectoryStore
	AdminStore
	RestrictionStore
	RegistrationTokenAdminStore
	ComplianceStore
	RetentionStore
	FederationStore
	SlidingSyncStore
	KeyStore
	OpenIDStore
	AppServiceStore
	// Close releases the database connections.
	Close() error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}
