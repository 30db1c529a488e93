package storage

import (
	"context"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/id"
)

// ErrWrongBackupVersion is returned when keys are written to a backup
// version that is not the user's current one.
var ErrWrongBackupVersion = errors.New("not the current backup version")

// KeyUpload is one POST /keys/upload, stored in one transaction.
type KeyUpload struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	// DeviceKeys replaces the device's identity keys when not nil.
	DeviceKeys json.RawMessage
	// OneTimeKeys maps "algorithm:key_id" to the key; existing IDs are kept.
	OneTimeKeys map[string]json.RawMessage
	// FallbackKeys maps "algorithm:key_id" to the key; each replaces the
	// device's fallback key of that algorithm (unless it is the same key).
	FallbackKeys map[string]json.RawMessage
}

// DeviceKey is a device's uploaded device_keys object and its display name.
type DeviceKey struct {
	JSON        json.RawMessage
	DisplayName string
}

// ClaimedKey is a one-time or fallback key handed out by ClaimKeys.
type ClaimedKey struct {
	KeyID string // "algorithm:key_id"
	Key   json.RawMessage
}

// KeySignature is one signature uploaded on another key.
type KeySignature struct {
	TargetUser id.UserID
	// TargetKey is a device ID or a cross-signing public key (unpadded base64).
	TargetKey  string
	SignerUser id.UserID
	// SignerKey is the signing key's ID, "ed25519:<device or public key>".
	SignerKey string
	Signature string
}

// DeviceListChange is one entry of the device-list stream.
type DeviceListChange struct {
	Pos    int64
	UserID id.UserID
	// Observer is the only user to tell, or empty for every user sharing a room with UserID.
	Observer id.UserID
	// Left is set when Observer no longer shares a room with UserID.
	Left bool
}

// ToDeviceMessage is one queued to-device event.
type ToDeviceMessage struct {
	Pos      int64
	UserID   id.UserID
	DeviceID id.DeviceID
	Sender   id.UserID
	Type     string
	Content  json.RawMessage
}

// BackupVersion is a server-side key backup's metadata.
type BackupVersion struct {
	Version   int64
	Algorithm string
	AuthData  json.RawMessage
	Etag      int64
	Count     int64
}

// BackupKey is one backed-up megolm session key.
type BackupKey struct {
	RoomID            id.RoomID
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       json.RawMessage
}

// KeyStore keeps end-to-end encryption keys, the device-list and to-device
// streams and key backups.
type KeyStore interface {
	// UploadKeys stores device, one-time and fallback keys; a change of the
	// device keys is recorded in the device-list stream. It returns the
	// device's one-time key counts per algorithm and the new device-list
	// position (0 when unchanged).
	UploadKeys(ctx context.Context, u KeyUpload) (counts map[string]int, dlPos int64, err error)
	// DeviceKeys returns the device keys of existing devices: of every device
	// of a user when its list is empty, else of the listed ones. Every
	// queried user has an entry, empty when it has no keys.
	DeviceKeys(ctx context.Context, query map[id.UserID][]id.DeviceID) (map[id.UserID]map[id.DeviceID]DeviceKey, error)
	// OneTimeKeyCounts counts a device's unclaimed one-time keys per algorithm.
	OneTimeKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, error)
	// UnusedFallbackKeyTypes lists the algorithms of a device's unused fallback keys.
	UnusedFallbackKeyTypes(ctx context.Context, user id.UserID, device id.DeviceID) ([]string, error)
	// DeviceKeyCounts is OneTimeKeyCounts and UnusedFallbackKeyTypes in one
	// query (every /sync reports both).
	DeviceKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, []string, error)
	// ClaimKeys removes and returns one one-time key per requested device and
	// algorithm, or marks and returns the fallback key when none is left.
	// Each one-time key is returned at most once, even to concurrent callers.
	ClaimKeys(ctx context.Context, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]ClaimedKey, error)

	// CrossSigningKeys returns the users' cross-signing keys by type
	// ("master", "self_signing", "user_signing").
	CrossSigningKeys(ctx context.Context, users []id.UserID) (map[id.UserID]map[string]json.RawMessage, error)
	// SetCrossSigningKeys stores cross-signing keys by type and records a
	// device-list change (for the owner alone when only the private
	// user-signing key changes); it returns the new device-list position.
	SetCrossSigningKeys(ctx context.Context, user id.UserID, keys map[string]json.RawMessage) (int64, error)
	// KeySignatures returns the signatures uploaded on the users' keys.
	KeySignatures(ctx context.Context, users []id.UserID) ([]KeySignature, error)
	// AddKeySignatures stores signatures and records a device-list change for
	// each target user: for everyone when the owner signed, for the signer
	// alone otherwise. It returns the new device-list position.
	AddKeySignatures(ctx context.Context, sigs []KeySignature) (int64, error)

	// SharedRoomUsers returns every user joined to a room user is joined to
	// (read from the rooms' current state, for device-list tracking).
	SharedRoomUsers(ctx context.Context, user id.UserID) (map[id.UserID]struct{}, error)
	// RoomJoinedUsers returns the users joined to room.
	RoomJoinedUsers(ctx context.Context, room id.RoomID) ([]id.UserID, error)
	// DeviceListPosition is the device-list stream's position.
	DeviceListPosition(ctx context.Context) (int64, error)
	// DeviceListChanges returns the changes with from < pos <= to that are
	// for everyone or for observer, in order.
	DeviceListChanges(ctx context.Context, from, to int64, observer id.UserID) ([]DeviceListChange, error)
	// LastDeviceListChange returns the position of user's latest change for
	// everyone (Observer empty) before pos, or 0 when there is none.
	LastDeviceListChange(ctx context.Context, user id.UserID, before int64) (int64, error)
	// AddDeviceListChanges records changes (for example after a membership
	// change) at one new position, which it returns.
	AddDeviceListChanges(ctx context.Context, changes []DeviceListChange) (int64, error)

	// ToDevicePosition is the to-device stream's position.
	ToDevicePosition(ctx context.Context) (int64, error)
	// SendToDevice queues messages, once per (sender, device, txnID); dup is
	// true (and nothing is stored) when the transaction was seen before.
	SendToDevice(ctx context.Context, sender id.UserID, senderDevice id.DeviceID, txnID string, msgs []ToDeviceMessage) (pos int64, dup bool, err error)
	// AckToDevice deletes the device's messages with pos <= upTo.
	AckToDevice(ctx context.Context, user id.UserID, device id.DeviceID, upTo int64) error
	// ToDeviceMessages returns the device's messages with from < pos <= to,
	// oldest first, at most limit of them (0: no limit). /sync passes no
	// limit: a message left out would be acknowledged (deleted) by the next
	// sync's token without having been delivered.
	ToDeviceMessages(ctx context.Context, user id.UserID, device id.DeviceID, from, to int64, limit int) ([]ToDeviceMessage, error)

	// SetDehydratedDevice replaces the user's dehydrated device (MSC3814):
	// the old one is deleted with its keys and messages, and the new device
	// is created with its keys (keys.UserID and keys.DeviceID are set from
	// user and deviceID), in one transaction. ErrConflict if deviceID is a
	// normal device of the user.
	SetDehydratedDevice(ctx context.Context, user id.UserID, deviceID id.DeviceID, displayName string, data json.RawMessage, keys KeyUpload) error
	// GetDehydratedDevice returns the user's dehydrated device; ErrNotFound if none.
	GetDehydratedDevice(ctx context.Context, user id.UserID) (id.DeviceID, json.RawMessage, error)
	// DeleteDehydratedDevice deletes the user's dehydrated device and returns
	// its ID; ErrNotFound if none.
	DeleteDehydratedDevice(ctx context.Context, user id.UserID) (id.DeviceID, error)

	// CreateBackupVersion creates a backup version, which becomes the current one.
	CreateBackupVersion(ctx context.Context, user id.UserID, algorithm string, authData json.RawMessage) (int64, error)
	// GetBackupVersion returns a backup version (the current one when version
	// is 0) with its key count; ErrNotFound if there is none or it was deleted.
	GetBackupVersion(ctx context.Context, user id.UserID, version int64) (*BackupVersion, error)
	// UpdateBackupVersion replaces auth_data; ErrNotFound if the version does not exist.
	UpdateBackupVersion(ctx context.Context, user id.UserID, version int64, authData json.RawMessage) error
	// DeleteBackupVersion deletes a version and its keys; ErrNotFound if it
	// never existed (deleting a deleted version succeeds).
	DeleteBackupVersion(ctx context.Context, user id.UserID, version int64) error
	// PutBackupKeys stores keys in the current version, keeping an existing
	// key when it is better; ErrNotFound if version does not exist,
	// ErrWrongBackupVersion (with current) if it is not the current one.
	PutBackupKeys(ctx context.Context, user id.UserID, version int64, keys []BackupKey) (etag, count int64, current int64, err error)
	// BackupKeys returns the keys of a version, filtered by room and session
	// when they are not empty; ErrNotFound if the version does not exist.
	BackupKeys(ctx context.Context, user id.UserID, version int64, room id.RoomID, session string) ([]BackupKey, error)
	// DeleteBackupKeys deletes keys of a version, filtered like BackupKeys.
	DeleteBackupKeys(ctx context.Context, user id.UserID, version int64, room id.RoomID, session string) (etag, count int64, err error)
}
