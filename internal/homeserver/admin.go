package homeserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/clientapi"
	"parley/internal/config"
	"parley/storage/sqlstore"
)

// RegisterUser creates an account directly in cfg's database (parley
// register-user without --url). It runs migrations if needed.
func RegisterUser(ctx context.Context, cfg config.Config, localpart, password string, admin bool) (id.UserID, error) {
	store, err := sqlstore.New(ctx, cfg.Database.URL, 2)
	if err != nil {
		return "", fmt.Errorf("open database: %w", err)
	}
	defer store.Close()
	return clientapi.RegisterLocalUser(ctx, &cfg, store, localpart, password, admin)
}

// RegisterUserRemote creates an account through a running server's
// shared-secret registration API (/_synapse/admin/v1/register).
func RegisterUserRemote(ctx context.Context, baseURL, secret, localpart, password string, admin bool) (id.UserID, error) {
	base := strings.TrimRight(baseURL, "/") + "/_synapse/admin/v1/register"
	client := &http.Client{Timeout: 30 * time.Second}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := call(ctx, client, http.MethodGet, base, nil, &nonce); err != nil {
		return "", err
	}
	body := map[string]any{
		"nonce": nonce.Nonce, "username": localpart, "password": password, "admin": admin,
		"mac": clientapi.SharedSecretMAC(secret, nonce.Nonce, localpart, password, admin, ""),
	}
	var resp struct {
		UserID id.UserID `json:"user_id"`
	}
	if err := call(ctx, client, http.MethodPost, base, body, &resp); err != nil {
		return "", err
	}
	return resp.UserID, nil
}

func call(ctx context.Context, client *http.Client, method, url string, body, out any) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rdr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}
