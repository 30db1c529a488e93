// Package identity is the homeserver's client of identity servers (Identity
// Service API v2): address lookups, storing third-party invitations and
// checking that an identity server's key is still valid.
package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"syscall"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
)

// Client calls identity servers (Identity Service API v2) over
// HTTPS. Their names come from clients, so unless federation.allow_private_ips
// is set it refuses to connect to loopback, private and link-local addresses.
type Client struct {
	hc *http.Client
}

func NewClient(cfg *config.Config, log *zap.Logger) *Client {
	tlsCfg, err := cfg.Federation.ClientTLSConfig()
	if err != nil {
		log.Warn("identity server client: using the system's CAs", zap.Error(err))
		tlsCfg = nil
	}
	if cfg.IdentityServers.InsecureSkipVerify {
		tlsCfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // tests only, by config
	}
	allowPrivate := cfg.Federation.AllowPrivateIPs
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil || ip.IsUnspecified() || ip.IsMulticast() ||
			(!allowPrivate && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast())) {
			return fmt.Errorf("identity server address %s is not allowed", host)
		}
		return nil
	}}
	tr := &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// ErrServer is an identity server failure: unreachable, a server
// error or an answer that is not what the spec says.
var ErrServer = errors.New("identity server error")

// Error is an identity server's refusal (a 4xx Matrix error).
type Error struct {
	Status  int
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("identity server answered %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// do calls /_matrix/identity/v2/<path> on server with the client's access token.
func (c *Client) do(ctx context.Context, server, token, method, path string, body, out any) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+server+"/_matrix/identity/v2"+path, rdr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrServer, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrServer, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrServer, err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		ie := &Error{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, ie)
		return ie
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %d", ErrServer, server, resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: invalid answer from %s: %v", ErrServer, server, err)
	}
	return nil
}

// Lookup returns the Matrix user bound to (medium, address) on server, or ""
// when none is: hash_details, then lookup with sha256 hashing (or none, if
// that is all the server offers).
func (c *Client) Lookup(ctx context.Context, server, token, medium, address string) (id.UserID, error) {
	var details struct {
		Algorithms []string `json:"algorithms"`
		Pepper     string   `json:"lookup_pepper"`
	}
	if err := c.do(ctx, server, token, http.MethodGet, "/hash_details", nil, &details); err != nil {
		return "", err
	}
	var algorithm, hashed string
	switch {
	case slices.Contains(details.Algorithms, "sha256") && details.Pepper != "":
		sum := sha256.Sum256([]byte(address + " " + medium + " " + details.Pepper))
		algorithm, hashed = "sha256", base64.RawURLEncoding.EncodeToString(sum[:])
	case slices.Contains(details.Algorithms, "none"):
		algorithm, hashed = "none", address+" "+medium
	default:
		return "", fmt.Errorf("%w: %s offers no lookup algorithm this server knows", ErrServer, server)
	}
	var resp struct {
		Mappings map[string]string `json:"mappings"`
	}
	if err := c.do(ctx, server, token, http.MethodPost, "/lookup",
		map[string]any{"addresses": []string{hashed}, "algorithm": algorithm, "pepper": details.Pepper}, &resp); err != nil {
		return "", err
	}
	mxid := id.UserID(resp.Mappings[hashed])
	if mxid == "" {
		return "", nil
	}
	if _, _, err := mxid.ParseAndValidateRelaxed(); err != nil {
		return "", fmt.Errorf("%w: %s mapped the address to an invalid user ID", ErrServer, server)
	}
	return mxid, nil
}

// Invitation is an identity server's store-invite answer.
type Invitation struct {
	Token       string
	DisplayName string
	PublicKeys  []PublicKey
}

// PublicKey is one public key of an identity server.
type PublicKey struct {
	PublicKey      string `json:"public_key"`
	KeyValidityURL string `json:"key_validity_url"`
}

// StoreInvite stores an invitation with server (store-invite).
func (c *Client) StoreInvite(ctx context.Context, server, token string, req map[string]any) (*Invitation, error) {
	var resp struct {
		Token       string      `json:"token"`
		DisplayName string      `json:"display_name"`
		PublicKeys  []PublicKey `json:"public_keys"`
		// The older single-key form, kept by some identity servers.
		PublicKey string `json:"public_key"`
	}
	if err := c.do(ctx, server, token, http.MethodPost, "/store-invite", req, &resp); err != nil {
		return nil, err
	}
	inv := &Invitation{Token: resp.Token, DisplayName: resp.DisplayName, PublicKeys: resp.PublicKeys}
	if len(inv.PublicKeys) == 0 && resp.PublicKey != "" {
		inv.PublicKeys = []PublicKey{{PublicKey: resp.PublicKey,
			KeyValidityURL: "https://" + server + "/_matrix/identity/v2/pubkey/isvalid"}}
	}
	return inv, nil
}

// KeyValid asks an identity server whether its public key is still valid
// (the key_validity_url of a third-party invite). validityURL must be an
// https URL; an unreachable server or any answer but {"valid": true} is an error.
func (c *Client) KeyValid(ctx context.Context, validityURL, publicKey string) error {
	u, err := url.Parse(validityURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%w: invalid key_validity_url %q", ErrServer, validityURL)
	}
	q := u.Query()
	q.Set("public_key", publicKey)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrServer, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrServer, err)
	}
	defer resp.Body.Close()
	var body struct {
		Valid bool `json:"valid"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &body) != nil {
		return fmt.Errorf("%w: %s answered %d", ErrServer, u.Host, resp.StatusCode)
	}
	if !body.Valid {
		return fmt.Errorf("%w: the identity server says the key is no longer valid", ErrServer)
	}
	return nil
}
