package mediaapi_test

import (
	"bytes"
	"errors"
	"image"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"parley/clientapi"
	"parley/mediaapi"
	"parley/mediaapi/blob"
)

func TestLocalMediaForFederation(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	blobs, err := blob.NewLocal(srv.Cfg.Media.Path)
	if err != nil {
		t.Fatal(err)
	}
	api, err := mediaapi.New(mediaapi.Deps{Config: &srv.Cfg, Store: srv.HS.Store, Accounts: srv.HS.Store, Blobs: blobs,
		Auth: clientapi.NewAuthenticator(srv.HS.Store, zaptest.NewLogger(t)), Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	media := upload(t, alice, testPNG(), "image/png", "p.png")
	mediaID := strings.TrimPrefix(media, "hs1.test/")
	c, err := api.LocalMedia(t.Context(), mediaID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c.Body)
	c.Body.Close()
	if !bytes.Equal(b, testPNG()) || c.ContentType != "image/png" || c.FileName != "p.png" || c.Size != int64(len(b)) {
		t.Fatalf("local media: %q %q %d", c.ContentType, c.FileName, c.Size)
	}
	th, err := api.LocalThumbnail(t.Context(), mediaID, 64, 64, "scale", false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(th.Body)
	th.Body.Close()
	if err != nil || cfg.Width != 64 || cfg.Height != 48 {
		t.Fatalf("thumbnail %dx%d %v", cfg.Width, cfg.Height, err)
	}
	doc := strings.TrimPrefix(upload(t, alice, []byte("text"), "text/plain", ""), "hs1.test/")
	if _, err := api.LocalThumbnail(t.Context(), doc, 64, 64, "scale", false); !errors.Is(err, mediaapi.ErrCannotThumbnail) {
		t.Fatalf("thumbnail of text: %v", err)
	}
	if _, err := api.LocalMedia(t.Context(), "missing"); !errors.Is(err, mediaapi.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/quarantine/"+media, nil), http.StatusOK, "")
	if _, err := api.LocalMedia(t.Context(), mediaID); !errors.Is(err, mediaapi.ErrNotFound) {
		t.Fatalf("quarantined: %v", err)
	}
}
