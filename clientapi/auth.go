package clientapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"parley/internal/asapi"
	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/storage"
)

// lastSeenInterval is how stale a device's last_seen_ts may get before a
// request updates it, so that authenticating is not a write per request.
const lastSeenInterval = time.Minute

// Authenticator checks access tokens against the account store. Tokens are
// stored as SHA-256 hashes, so a lookup is one indexed query.
type Authenticator struct {
	store storage.AccountStore
	log   *zap.Logger
	// apps are the application services, whose as_tokens authenticate too.
	apps *asapi.Registry

	mu sync.Mutex // guards seen
	// seen is when this process last wrote last_seen for a token (by session ID).
	seen map[int64]int64
}

// NewAuthenticator returns an Authenticator over store.
func NewAuthenticator(store storage.AccountStore, log *zap.Logger) *Authenticator {
	return &Authenticator{store: store, log: log, seen: map[int64]int64{}}
}

// HashToken is the stored form of an access or refresh token.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// NewToken returns a random opaque token with the given prefix.
func NewToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*authn.Device, error) {
	if as := a.apps.ByToken(token); as != nil {
		return a.appServiceDevice(ctx, as)
	}
	dev, expired, err := a.store.DeviceByAccessToken(ctx, HashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.Errorf(http.StatusUnauthorized, httputil.CodeUnknownToken, "Unknown access token").With("soft_logout", false)
	}
	if err != nil {
		return nil, err
	}
	if expired {
		return nil, httputil.Errorf(http.StatusUnauthorized, httputil.CodeUnknownToken, "Access token has expired").With("soft_logout", true)
	}
	if dev.PrevSessionID != 0 {
		// First use of a refreshed token: the token it replaced is revoked now.
		if err := a.store.DropPredecessor(ctx, dev.SessionID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	a.touch(ctx, dev)
	return &authn.Device{UserID: dev.UserID, DeviceID: dev.DeviceID, IsGuest: dev.IsGuest, IsAdmin: dev.IsAdmin, SessionID: dev.SessionID}, nil
}

// touch updates the device's last_seen_ts/ip at most once per lastSeenInterval.
func (a *Authenticator) touch(ctx context.Context, dev *storage.Device) {
	now := time.Now().UnixMilli()
	ip := authn.ClientIP(ctx)
	if now-dev.LastSeenTS < lastSeenInterval.Milliseconds() && (ip == "" || ip == dev.LastSeenIP) {
		return
	}
	a.mu.Lock()
	if now-a.seen[dev.SessionID] < lastSeenInterval.Milliseconds() {
		a.mu.Unlock()
		return
	}
	if len(a.seen) > 100000 {
		clear(a.seen)
	}
	a.seen[dev.SessionID] = now
	a.mu.Unlock()
	if err := a.store.UpdateDeviceLastSeen(ctx, dev.UserID, dev.DeviceID, now, ip); err != nil {
		logging.From(ctx, a.log).Warn("update device last seen", logging.UserID(dev.UserID), logging.DeviceID(dev.DeviceID), zap.Error(err))
	}
}

// appServiceDevice authenticates a request made with an application
// service's as_token (application service API, "Identity assertion"): it
// acts for its sender, or for the user_id it asserts, which must be in its
// users namespace and registered (403 M_FORBIDDEN otherwise). An asserted
// device_id must be one of that user's devices.
func (a *Authenticator) appServiceDevice(ctx context.Context, as *asapi.Service) (*authn.Device, error) {
	assert := authn.AssertionFrom(ctx)
	dev := &authn.Device{UserID: as.Sender, AppService: as.ID, NoRateLimit: true}
	if assert.UserID != "" && assert.UserID != as.Sender {
		if !as.InUserNamespace(assert.UserID) {
			return nil, httputil.Forbidden("Application service cannot masquerade as %s", assert.UserID)
		}
		if _, err := a.store.GetAccount(ctx, assert.UserID); errors.Is(err, storage.ErrNotFound) {
			return nil, httputil.Forbidden("Application service has not registered %s", assert.UserID)
		} else if err != nil {
			return nil, err
		}
		dev.UserID, dev.NoRateLimit = assert.UserID, !as.IsRateLimited()
	}
	if assert.DeviceID != "" {
		if _, err := a.store.GetDevice(ctx, dev.UserID, assert.DeviceID); errors.Is(err, storage.ErrNotFound) {
			return nil, httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknownDevice, "Unknown device %s of %s", assert.DeviceID, dev.UserID)
		} else if err != nil {
			return nil, err
		}
		dev.DeviceID = assert.DeviceID
	}
	return dev, nil
}
