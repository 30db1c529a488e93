package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.mau.fi/util/jsontime"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/storage"
)

// minRefetch is how long after a successful fetch a server's keys are not
// fetched again just because a key ID is unknown (a forged key ID must not
// make us hammer the server).
const minRefetch = time.Minute

// maxKeyBackoff caps the wait after failed key fetches.
const maxKeyBackoff = 10 * time.Minute

// Keyring holds this server's signing key and old keys, and fetches, verifies
// and caches (in the database) other servers' keys. It implements mautrix's
// federation.KeyCache, so mautrix's ServerAuth verifies inbound requests
// through it, and its GetKey is a pdu.GetKeyFunc for event signatures.
type Keyring struct {
	serverName string
	key        *federation.SigningKey
	old        map[id.KeyID]federation.OldVerifyKey
	store      storage.FederationStore
	client     *federation.Client
	log        *zap.Logger

	// mu guards requeried: servers whose key re-query mautrix is about to make.
	mu        sync.Mutex
	requeried map[string]time.Time
}

var _ federation.KeyCache = (*Keyring)(nil)

// NewKeyring builds the keyring. client fetches remote keys.
func NewKeyring(serverName string, key *federation.SigningKey, old []config.OldVerifyKey, store storage.FederationStore, client *federation.Client, log *zap.Logger) *Keyring {
	k := &Keyring{serverName: serverName, key: key, store: store, client: client, log: log,
		old: map[id.KeyID]federation.OldVerifyKey{}, requeried: map[string]time.Time{}}
	for _, o := range old {
		k.old[id.KeyID(o.KeyID)] = federation.OldVerifyKey{Key: id.SigningKey(o.PublicKey), ExpiredTS: jsontime.UM(time.UnixMilli(o.ExpiredTS))}
	}
	return k
}

// OwnKeys returns this server's key response, self-signed, valid for a day.
// old_verify_keys is always present (the spec requires it; {} without old keys).
func (k *Keyring) OwnKeys() *federation.ServerKeyResponse {
	body := map[string]any{
		"server_name":     k.serverName,
		"verify_keys":     map[id.KeyID]federation.ServerVerifyKey{k.key.ID: {Key: k.key.Pub}},
		"old_verify_keys": k.old,
		"valid_until_ts":  time.Now().Add(24 * time.Hour).UnixMilli(),
	}
	sig, err := k.key.SignJSON(body)
	if err != nil {
		panic(err) // only plain strings, maps and integers: always canonical
	}
	body["signatures"] = map[string]map[id.KeyID]string{k.serverName: {k.key.ID: sig}}
	raw, _ := json.Marshal(body)
	var resp federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		panic(err)
	}
	return &resp
}

// Fetch returns serverName's keys valid until at least minValid: from the
// cache, else fetched from the server itself (checking that the response
// names the server and is self-signed). Failed fetches back off exponentially.
func (k *Keyring) Fetch(ctx context.Context, serverName string, minValid time.Time) (*federation.ServerKeyResponse, error) {
	if serverName == k.serverName {
		return k.OwnKeys(), nil
	}
	resp, err := k.cached(ctx, serverName)
	if err != nil {
		return nil, err
	}
	if resp != nil && !resp.ValidUntilTS.Before(minValid) {
		return resp, nil
	}
	if ferr, err := k.store.GetKeyFetchError(ctx, serverName); err == nil && !retryDue(ferr, maxKeyBackoff) {
		if resp != nil {
			return resp, nil
		}
		return nil, fmt.Errorf("%w: %s", federation.ErrRecentKeyQueryFailed, ferr.Message)
	}
	fresh, err := k.fetchDirect(ctx, serverName)
	if err != nil {
		if serr := k.store.StoreKeyFetchError(ctx, serverName, err.Error(), time.Now().UnixMilli()); serr != nil {
			k.log.Warn("store key fetch error", zap.String("server_name", serverName), zap.Error(serr))
		}
		if resp != nil {
			return resp, nil
		}
		return nil, err
	}
	return fresh, nil
}

func (k *Keyring) fetchDirect(ctx context.Context, serverName string) (*federation.ServerKeyResponse, error) {
	resp, err := k.client.ServerKeys(ctx, serverName)
	if err != nil {
		return nil, fmt.Errorf("fetch keys of %s: %w", serverName, err)
	}
	if err := k.save(ctx, serverName, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// save verifies and stores a key response received from serverName.
func (k *Keyring) save(ctx context.Context, serverName string, resp *federation.ServerKeyResponse) error {
	if resp.ServerName != serverName {
		return fmt.Errorf("key response from %s names %q", serverName, resp.ServerName)
	}
	if len(resp.VerifyKeys) == 0 {
		return fmt.Errorf("key response from %s has no verify_keys", serverName)
	}
	if err := resp.VerifySelfSignature(); err != nil {
		return fmt.Errorf("keys of %s: %w", serverName, err)
	}
	valid := resp.ValidUntilTS.UnixMilli()
	// Servers must not be trusted beyond a week (spec: valid_until_ts is capped at 7 days for room v5+).
	if limit := time.Now().Add(7 * 24 * time.Hour).UnixMilli(); valid > limit {
		valid = limit
	}
	keys := make([]storage.ServerKey, 0, len(resp.VerifyKeys)+len(resp.OldVerifyKeys))
	for kid, v := range resp.VerifyKeys {
		keys = append(keys, storage.ServerKey{ServerName: serverName, KeyID: string(kid), PublicKey: string(v.Key), ValidUntilTS: valid})
	}
	for kid, v := range resp.OldVerifyKeys {
		keys = append(keys, storage.ServerKey{ServerName: serverName, KeyID: string(kid), PublicKey: string(v.Key),
			ValidUntilTS: v.ExpiredTS.UnixMilli(), ExpiredTS: max(v.ExpiredTS.UnixMilli(), 1)})
	}
	raw := resp.Raw
	if raw == nil {
		var err error
		if raw, err = json.Marshal(resp); err != nil {
			return err
		}
	}
	return k.store.StoreServerKeys(ctx, serverName, raw, valid, time.Now().UnixMilli(), keys)
}

// cached returns the stored key response of serverName, nil if none.
func (k *Keyring) cached(ctx context.Context, serverName string) (*federation.ServerKeyResponse, error) {
	raw, _, _, err := k.store.ServerKeyResponse(ctx, serverName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var resp federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("cached keys of %s: %w", serverName, err)
	}
	return &resp, nil
}

func retryDue(e *storage.KeyFetchError, maxBackoff time.Duration) bool {
	if maxBackoff < 0 {
		return true
	}
	backoff := time.Duration(math.Min(math.Exp(float64(e.Failures)), 1e6)) * time.Second
	return time.Since(time.UnixMilli(e.LastTS)) > min(backoff, maxBackoff)
}

// LoadKeys implements federation.KeyCache. Unlike a plain cache it fetches
// missing or expired keys itself, so that the server name of the response is
// checked against the server asked.
func (k *Keyring) LoadKeys(ctx context.Context, serverName string, maxBackoff time.Duration) (*federation.ServerKeyResponse, error) {
	resp, err := k.Fetch(ctx, serverName, time.Now())
	if err != nil {
		if !errors.Is(err, federation.ErrRecentKeyQueryFailed) {
			err = fmt.Errorf("%w: %w", federation.ErrRecentKeyQueryFailed, err)
		}
		return nil, err
	}
	if resp.ValidUntilTS.Before(time.Now()) {
		return nil, fmt.Errorf("%w: keys of %s expired", federation.ErrRecentKeyQueryFailed, serverName)
	}
	return resp, nil
}

// StoreKeys implements federation.KeyCache. It accepts only a response to a
// re-query this keyring allowed (ShouldReQuery), for the server re-queried.
func (k *Keyring) StoreKeys(ctx context.Context, resp *federation.ServerKeyResponse) error {
	k.mu.Lock()
	_, ok := k.requeried[resp.ServerName]
	delete(k.requeried, resp.ServerName)
	k.mu.Unlock()
	if !ok {
		return fmt.Errorf("unsolicited key response for %s", resp.ServerName)
	}
	return k.save(ctx, resp.ServerName, resp)
}

// StoreFetchError implements federation.KeyCache.
func (k *Keyring) StoreFetchError(ctx context.Context, serverName string, err error) error {
	return k.store.StoreKeyFetchError(ctx, serverName, err.Error(), time.Now().UnixMilli())
}

// ShouldReQuery implements federation.KeyCache: a server's keys are fetched
// again for an unknown key ID at most once a minute.
func (k *Keyring) ShouldReQuery(ctx context.Context, serverName string) (bool, error) {
	_, _, fetched, err := k.store.ServerKeyResponse(ctx, serverName)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	if err == nil && time.Since(time.UnixMilli(fetched)) < minRefetch {
		return false, nil
	}
	k.mu.Lock()
	k.requeried[serverName] = time.Now()
	k.mu.Unlock()
	return true, nil
}

// GetKey is a pdu.GetKeyFunc: the public key serverName used under keyID,
// and until when it may be used (an old key's expired_ts).
func (k *Keyring) GetKey(serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serverName == k.serverName {
		if keyID == k.key.ID {
			return k.key.Pub, time.Now().Add(24 * time.Hour), nil
		}
		if o, ok := k.old[keyID]; ok {
			return o.Key, o.ExpiredTS.Time, nil
		}
		return "", time.Time{}, nil
	}
	lookup := func() (id.SigningKey, time.Time, bool, error) {
		keys, err := k.store.ServerKeys(ctx, serverName)
		if err != nil {
			return "", time.Time{}, false, err
		}
		for _, sk := range keys {
			if sk.KeyID == string(keyID) {
				return id.SigningKey(sk.PublicKey), time.UnixMilli(sk.ValidUntilTS), sk.ExpiredTS != 0, nil
			}
		}
		return "", time.Time{}, false, nil
	}
	key, valid, expired, err := lookup()
	if err != nil {
		return "", time.Time{}, err
	}
	if key != "" && (expired || !valid.Before(minValidUntil)) {
		return key, valid, nil
	}
	if _, err := k.Fetch(ctx, serverName, minValidUntil); err != nil {
		if key != "" {
			return key, valid, nil
		}
		return "", time.Time{}, err
	}
	key, valid, _, err = lookup()
	return key, valid, err
}
