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
