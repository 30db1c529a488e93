package clientapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Authenticator checks access tokens against the account store. Tokens are
// stored as SHA-256 hashes, so a lookup is one indexed query.
type Authenticator struct {
	store storage.AccountStore
}

// NewAuthenticator returns an Authenticator over store.
func NewAuthenticator(store storage.AccountStore) *Authenticator {
	return &Authenticator{store: store}
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
	return &authn.Device{UserID: dev.UserID, DeviceID: dev.DeviceID, IsGuest: dev.IsGuest, SessionID: dev.SessionID}, nil
}
