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

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/adminapi"
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

// ExportRequest is what parley export asks for (see adminapi.ExportOptions).
type ExportRequest struct {
	RoomID, UserID string
	FromTS, ToTS   int64
	Keyword        string
	Format         string
}

// Export writes an e-discovery export of cfg's database to w (parley export)
// and records the run in the audit log. It returns how many events it wrote.
func Export(ctx context.Context, cfg config.Config, req ExportRequest, w io.Writer) (int, error) {
	opts := adminapi.ExportOptions{RoomID: id.RoomID(req.RoomID), UserID: id.UserID(req.UserID), FromTS: req.FromTS, ToTS: req.ToTS,
		Keyword: req.Keyword, Format: req.Format}
	store, err := sqlstore.New(ctx, cfg.Database.URL, 2)
	if err != nil {
		return 0, fmt.Errorf("open database: %w", err)
	}
	defer store.Close()
	n, err := adminapi.Export(ctx, store, opts, w)
	adminapi.NewAuditor(store, zap.NewNop()).Record(ctx, "export", "", "", "", string(opts.RoomID)+string(opts.UserID), map[string]any{
		"room_id": opts.RoomID, "user_id": opts.UserID, "from": opts.FromTS, "to": opts.ToTS, "keyword": opts.Keyword,
		"format": opts.Format, "via": "cli", "events": n})
	return n, err
}
