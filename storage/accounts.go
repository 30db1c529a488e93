package storage

import (
	"context"

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
	// SessionID increases with every new access token of the device.
	SessionID int64
}

// NewDevice is what CreateDevice stores.
type NewDevice struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	DisplayName string
	// AccessTokenHash is the SHA-256 of the access token, never the token itself.
	AccessTokenHash []byte
	// ExpiresTS is when the access token expires (ms); 0 for never.
	ExpiresTS int64
	IP        string
}

// AccountStore keeps accounts, devices and access tokens.
type AccountStore interface {
	// CreateAccount stores a new account; ErrConflict if the user ID is taken.
	CreateAccount(ctx context.Context, acc Account) error
	// GetAccount returns the account; ErrNotFound if there is none.
	GetAccount(ctx context.Context, userID id.UserID) (*Account, error)
	// CreateDevice stores a device and its access token, replacing the device
	// and revoking its previous tokens if the device ID exists for the user.
	CreateDevice(ctx context.Context, d NewDevice) (*Device, error)
	// DeviceByAccessToken returns the device owning the hashed token; ErrNotFound
	// if the token is unknown or revoked. expired says whether it has expired.
	DeviceByAccessToken(ctx context.Context, tokenHash []byte) (dev *Device, expired bool, err error)
	// DeleteDevice removes a device and revokes its tokens.
	DeleteDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error
}
