package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Account is a local user account.
type Account struct {
	UserID       id.UserID
	PasswordHash string // empty when the account has no password
	IsAdmin      bool
	IsGuest      bool
	Deactivated  bool
	CreatedTS    int64
}

// Device is a logged-in session of a user, identified by its access token.
type Device struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	DisplayName string
	LastSeenTS  int64
	LastSeenIP  string
	IsGuest     bool
	// IsAdmin is the account's admin flag; set by DeviceByAccessToken only.
	IsAdmin bool
	// SessionID identifies the access token row; it increases with every new token.
	SessionID int64
	// PrevSessionID is the token a refresh replaced, still valid until this
	// token is first used (see DropPredecessor); 0 when there is none.
	PrevSessionID int64
}

// NewDevice is what CreateDevice stores.
type NewDevice struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	DisplayName string
	IsGuest     bool
	// AccessTokenHash is the SHA-256 of the access token, never the token itself.
	AccessTokenHash []byte
	// RefreshTokenHash is the SHA-256 of the refresh token, nil when none was issued.
	RefreshTokenHash []byte
	// ExpiresTS is when the access token expires (ms); 0 for never.
	ExpiresTS int64
	IP        string
}

// Registration is everything one successful registration writes, in one transaction.
type Registration struct {
	Account Account
	// DisplayName is the initial profile display name; empty for none.
	DisplayName string
	// Device is the first session; nil with inhibit_login.
	Device *NewDevice
	// RegistrationToken, when set, moves one pending use of the token to completed.
	RegistrationToken string
	// UIASession, when set, records the new user as the session's result, so
	// that a retry with the same session can be answered for the same user.
	UIASession string
}

// AccountStore keeps accounts, devices, access and refresh tokens and login tokens.
type AccountStore interface {
	// CreateAccount stores a new account; ErrConflict if the user ID is taken.
	CreateAccount(ctx context.Context, acc Account) error
	// Register stores a new account with its profile, first device and the
	// bookkeeping of its UIA session atomically; ErrConflict if the user ID is taken.
	Register(ctx context.Context, reg Registration) (*Device, error)
	// GetAccount returns the account; ErrNotFound if there is none.
	GetAccount(ctx context.Context, userID id.UserID) (*Account, error)
	// SetPassword replaces the password hash. When logoutDevices is set every
	// device except keep (which may be empty) is deleted in the same transaction.
	SetPassword(ctx context.Context, userID id.UserID, hash string, logoutDevices bool, keep id.DeviceID) error
	// DeactivateAccount marks the account deactivated and deletes every device
	// and token in one transaction; erase also removes the profile.
	DeactivateAccount(ctx context.Context, userID id.UserID, erase bool) error

	// CreateDevice stores a device and its access token, replacing the device
	// and revoking its previous tokens if the device ID exists for the user.
	CreateDevice(ctx context.Context, d NewDevice) (*Device, error)
	// DeviceByAccessToken returns the device owning the hashed token; ErrNotFound
	// if the token is unknown or revoked. expired says whether it has expired.
	DeviceByAccessToken(ctx context.Context, tokenHash []byte) (dev *Device, expired bool, err error)
	// GetDevice returns one device; ErrNotFound if the user has no such device.
	GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*Device, error)
	// ListDevices returns the user's devices ordered by device ID.
	ListDevices(ctx context.Context, userID id.UserID) ([]Device, error)
	// SetDeviceDisplayName renames a device; ErrNotFound if it does not exist.
	SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error
	// UpdateDeviceLastSeen records when and from where a device was last used.
	UpdateDeviceLastSeen(ctx context.Context, userID id.UserID, deviceID id.DeviceID, ts int64, ip string) error
	// DeleteDevice removes a device and revokes its tokens; ErrNotFound if it does not exist.
	DeleteDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error
	// DeleteDevices removes the listed devices (unknown ones are ignored) and
	// revokes their tokens in one transaction.
	DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error
	// DeleteAllDevices removes every device of the user except keep (may be empty).
	DeleteAllDevices(ctx context.Context, userID id.UserID, keep id.DeviceID) error

	// RefreshSession exchanges a refresh token for a new access and refresh
	// token on the same device. The old pair stays valid until the new access
	// or refresh token is first used. ErrNotFound if the refresh token is unknown.
	RefreshSession(ctx context.Context, refreshHash, newAccessHash, newRefreshHash []byte, expiresTS int64) (*Device, error)
	// DropPredecessor revokes the token that a refresh replaced with sessionID
	// and forgets the link; it is called when the new token is first used.
	DropPredecessor(ctx context.Context, sessionID int64) error

	// CreateLoginToken stores a single-use m.login.token token.
	CreateLoginToken(ctx context.Context, tokenHash []byte, userID id.UserID, expiresTS int64) error
	// ConsumeLoginToken deletes the token and returns its user; ErrNotFound if
	// it is unknown, used or expired at now (ms).
	ConsumeLoginToken(ctx context.Context, tokenHash []byte, now int64) (id.UserID, error)

	// CreateRegistrationNonce stores a shared-secret registration nonce.
	CreateRegistrationNonce(ctx context.Context, nonce string, createdTS int64) error
	// ConsumeRegistrationNonce deletes the nonce; ErrNotFound if it is unknown,
	// used, or was created before notBefore (ms).
	ConsumeRegistrationNonce(ctx context.Context, nonce string, notBefore int64) error
}

// UIASession is a user-interactive authentication session.
type UIASession struct {
	ID string
	// Op names the operation the session authorises (register, delete_devices…);
	// a session cannot be reused for another operation.
	Op string
	// UserID is the authenticating user, empty for registration.
	UserID    id.UserID
	CreatedTS int64
	// Completed lists the stages completed, in order.
	Completed []string
	// RegistrationToken is the token reserved by m.login.registration_token.
	RegistrationToken string
	// Params are request parameters the operation remembers (registration:
	// username, password hash, device options); opaque to storage.
	Params string
	// ResultUserID is the user a completed registration session created.
	ResultUserID id.UserID
}

// UIAStore keeps user-interactive auth sessions in the database so that
// several processes sharing it can serve one session.
type UIAStore interface {
	// CreateUIASession stores a new session and deletes sessions created before expireBefore (ms).
	CreateUIASession(ctx context.Context, s UIASession, expireBefore int64) error
	// GetUIASession returns a session; ErrNotFound if unknown.
	GetUIASession(ctx context.Context, sessionID string) (*UIASession, error)
	// CompleteUIAStage appends stage to the session's completed list (once) and
	// records a reserved registration token when regToken is not empty.
	CompleteUIAStage(ctx context.Context, sessionID, stage, regToken string) (*UIASession, error)
	// SetUIAParams replaces the session's remembered parameters.
	SetUIAParams(ctx context.Context, sessionID, params string) error
	// DeleteUIASession removes a session; unknown sessions are ignored.
	DeleteUIASession(ctx context.Context, sessionID string) error
}

// RegistrationToken is a token that allows registration (m.login.registration_token).
type RegistrationToken struct {
	Token string
	// UsesAllowed is nil for unlimited uses.
	UsesAllowed *int
	Pending     int
	Completed   int
	// ExpiryTime (ms) is nil for never.
	ExpiryTime *int64
}

// Valid says whether the token may start another registration at now (ms).
func (t *RegistrationToken) Valid(now int64) bool {
	if t.ExpiryTime != nil && *t.ExpiryTime <= now {
		return false
	}
	return t.UsesAllowed == nil || t.Pending+t.Completed < *t.UsesAllowed
}

// RegistrationTokenStore keeps registration tokens.
type RegistrationTokenStore interface {
	// CreateRegistrationToken stores a token; ErrConflict if it exists.
	CreateRegistrationToken(ctx context.Context, t RegistrationToken) error
	// GetRegistrationToken returns a token; ErrNotFound if unknown.
	GetRegistrationToken(ctx context.Context, token string) (*RegistrationToken, error)
	// ReserveRegistrationToken counts one pending use if the token is valid at
	// now (ms), atomically; ErrNotFound if it is unknown, used up or expired.
	ReserveRegistrationToken(ctx context.Context, token string, now int64) error
	// ReleaseRegistrationToken gives back a pending use (an abandoned session).
	ReleaseRegistrationToken(ctx context.Context, token string) error
}

// ProfileStore keeps profile fields (displayname, avatar_url, m.tz, custom keys)
// as raw JSON values.
type ProfileStore interface {
	// GetProfile returns every field of a local user; ErrNotFound if the account does not exist.
	GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
	// SetProfileField sets one field. ErrTooLarge if the profile would exceed
	// maxBytes of JSON; ErrNotFound if the account does not exist.
	SetProfileField(ctx context.Context, userID id.UserID, field string, value json.RawMessage, maxBytes int) error
	// DeleteProfileField removes one field; a missing field is not an error.
	DeleteProfileField(ctx context.Context, userID id.UserID, field string) error
}

// OpenIDStore keeps the OpenID tokens users request for other services.
type OpenIDStore interface {
	// CreateOpenIDToken stores the SHA-256 of a new token of user, valid until expiresTS (ms).
	CreateOpenIDToken(ctx context.Context, hash []byte, user id.UserID, now, expiresTS int64) error
	// OpenIDTokenUser returns the owner of an unexpired token; ErrNotFound otherwise.
	OpenIDTokenUser(ctx context.Context, hash []byte, now int64) (id.UserID, error)
}
