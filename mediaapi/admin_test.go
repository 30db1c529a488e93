package mediaapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"parley/clientapi"
	"parley/internal/testserver"
	"parley/mediaapi"
	"parley/mediaapi/blob"
)

func TestQuarantine(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	img := testPNG()
	a := upload(t, alice, img, "image/png", "")
	b := upload(t, bob, img, "image/png", "") // same content, other user
	other := upload(t, alice, []byte("unrelated"), "text/plain", "")

	expect(t, do(t, alice, http.MethodPost, "/_synapse/admin/v1/media/quarantine/"+a, nil), http.StatusForbidden, "M_FORBIDDEN")
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/quarantine/hs1.test/missing", nil), http.StatusNotFound, "M_NOT_FOUND")
	r := do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/quarantine/"+a, nil)
	expect(t, r, http.StatusOK, "")

	// The item, and everything with the same content, is no longer served.
	for _, m := range []string{a, b} {
		expect(t, download(t, bob, m), http.StatusNotFound, "M_NOT_FOUND")
		expect(t, do(t, bob, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+m+"?width=32&height=32", nil), http.StatusNotFound, "M_NOT_FOUND")
	}
	expect(t, download(t, bob, other), http.StatusOK, "")
	// Uploading the quarantined content again does not make it available.
	c := upload(t, bob, img, "image/png", "")
	expect(t, download(t, bob, c), http.StatusNotFound, "M_NOT_FOUND")

	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/unquarantine/"+a, nil), http.StatusOK, "")
	for _, m := range []string{a, b, c} {
		if r := download(t, bob, m); r.status != http.StatusOK || !bytes.Equal(r.body, img) {
			t.Fatalf("%s after unquarantine: %d", m, r.status)
		}
	}
}

func TestQuarantineByUser(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	a1 := upload(t, alice, []byte("one"), "text/plain", "")
	a2 := upload(t, alice, []byte("two"), "text/plain", "")
	b1 := upload(t, bob, []byte("three"), "text/plain", "")
	path := "/_synapse/admin/v1/user/" + testserver.PathEscape(string(alice.UserID)) + "/media/quarantine"
	expect(t, do(t, bob, http.MethodPost, path, nil), http.StatusForbidden, "M_FORBIDDEN")
	r := do(t, admin, http.MethodPost, path, nil)
	expect(t, r, http.StatusOK, "")
	if r.json["num_quarantined"] != float64(2) {
		t.Fatalf("num_quarantined: %s", r.body)
	}
	expect(t, download(t, bob, a1), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, download(t, bob, a2), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, download(t, bob, b1), http.StatusOK, "")
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/user/notauser/media/quarantine", nil), http.StatusBadRequest, "M_INVALID_PARAM")
}

func TestQuarantineByRoom(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	pic := upload(t, alice, testPNG(), "image/png", "")
	thumbOfPic := upload(t, alice, []byte("thumb"), "image/png", "")
	avatar := upload(t, alice, []byte("avatar"), "image/png", "")
	elsewhere := upload(t, alice, []byte("elsewhere"), "image/png", "")
	roomID := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	other := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/t1", roomID), map[string]any{
		"msgtype": "m.image", "body": "pic.png", "url": "mxc://" + pic,
		"info": map[string]any{"thumbnail_url": "mxc://" + thumbOfPic},
	})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.avatar/", roomID), map[string]any{"url": "mxc://" + avatar})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/t2", other), map[string]any{
		"msgtype": "m.image", "body": "e.png", "url": "mxc://" + elsewhere,
	})

	path := "/_synapse/admin/v1/room/" + testserver.PathEscape(roomID) + "/media/quarantine"
	expect(t, do(t, alice, http.MethodPost, path, nil), http.StatusForbidden, "M_FORBIDDEN")
	r := do(t, admin, http.MethodPost, path, nil)
	expect(t, r, http.StatusOK, "")
	if r.json["num_quarantined"] != float64(3) {
		t.Fatalf("num_quarantined: %s", r.body)
	}
	for _, m := range []string{pic, thumbOfPic, avatar} {
		expect(t, download(t, alice, m), http.StatusNotFound, "M_NOT_FOUND")
	}
	expect(t, download(t, alice, elsewhere), http.StatusOK, "")
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/room/"+testserver.PathEscape("!unknown:hs1.test")+"/media/quarantine", nil), http.StatusNotFound, "M_NOT_FOUND")
}

func TestDeleteMedia(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	shared := randomBytes(t, 100)
	a := upload(t, alice, shared, "text/plain", "")
	b := upload(t, bob, shared, "text/plain", "")
	img := upload(t, alice, testPNG(), "image/png", "") // with pre-generated thumbnails
	before := blobCount(t, srv)

	expect(t, do(t, alice, http.MethodDelete, "/_synapse/admin/v1/media/"+a, nil), http.StatusForbidden, "M_FORBIDDEN")
	expect(t, do(t, admin, http.MethodDelete, "/_synapse/admin/v1/media/remote.test/abc", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	r := do(t, admin, http.MethodDelete, "/_synapse/admin/v1/media/"+a, nil)
	expect(t, r, http.StatusOK, "")
	if fmt.Sprint(r.json["deleted_media"]) != "["+strings.TrimPrefix(a, "hs1.test/")+"]" || r.json["total"] != float64(1) {
		t.Fatalf("delete answered %s", r.body)
	}
	expect(t, download(t, bob, a), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, do(t, admin, http.MethodDelete, "/_synapse/admin/v1/media/"+a, nil), http.StatusNotFound, "M_NOT_FOUND")
	// The blob is still used by b.
	if r := download(t, bob, b); r.status != http.StatusOK || !bytes.Equal(r.body, shared) {
		t.Fatalf("shared content gone after deleting one reference: %d", r.status)
	}
	if n := blobCount(t, srv); n != before {
		t.Fatalf("%d blobs, want %d (shared blob kept)", n, before)
	}
	// Deleting all of alice's media removes the image and its thumbnails' blobs.
	r = do(t, admin, http.MethodDelete, "/_synapse/admin/v1/users/"+testserver.PathEscape(string(alice.UserID))+"/media", nil)
	expect(t, r, http.StatusOK, "")
	if r.json["total"] != float64(1) {
		t.Fatalf("user delete answered %s", r.body)
	}
	expect(t, download(t, alice, img), http.StatusNotFound, "M_NOT_FOUND")
	if n := blobCount(t, srv); n != 1 {
		t.Fatalf("%d blobs left, want 1 (bob's)", n)
	}
}

// fakeRemote serves remote media from a map and counts fetches.
type fakeRemote struct {
	mu      sync.Mutex
	media   map[string]string
	fetches int
}

func (f *fakeRemote) FetchMedia(_ context.Context, origin, mediaID string) (*mediaapi.RemoteMedia, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	body, ok := f.media[origin+"/"+mediaID]
	if !ok {
		return nil, mediaapi.ErrRemoteNotFound
	}
	return &mediaapi.RemoteMedia{ContentType: "text/plain", FileName: "r.txt", Body: io.NopCloser(strings.NewReader(body))}, nil
}

func (f *fakeRemote) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

func TestRemoteMediaAndPurge(t *testing.T) {
	srv := newServer(t)
	blobs, err := blob.NewLocal(srv.Cfg.Media.Path)
	if err != nil {
		t.Fatal(err)
	}
	remote := &fakeRemote{media: map[string]string{"remote.test/abc": "remote bytes", "remote.test/png": string(testPNG())}}
	api, err := mediaapi.New(mediaapi.Deps{
		Config: &srv.Cfg, Store: srv.HS.Store, Accounts: srv.HS.Store, Blobs: blobs,
		Auth: clientapi.NewAuthenticator(srv.HS.Store, zaptest.NewLogger(t)), Log: zaptest.NewLogger(t), Remote: remote,
	})
	if err != nil {
		t.Fatal(err)
	}
	media := testserver.Serve(t, api)
	alice := srv.Register(t, "alice")
	admin := makeAdmin(t, srv, "admin")
	alice.S, admin.S = media, media

	r := download(t, alice, "remote.test/abc")
	expect(t, r, http.StatusOK, "")
	if string(r.body) != "remote bytes" || r.header.Get("Content-Disposition") != "inline; filename=r.txt" {
		t.Fatalf("remote download: %q %q", r.body, r.header.Get("Content-Disposition"))
	}
	download(t, alice, "remote.test/abc")
	if remote.count() != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", remote.count())
	}
	expect(t, download(t, alice, "remote.test/none"), http.StatusNotFound, "M_NOT_FOUND")
	r = do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/remote.test/png?width=32&height=32&method=crop", nil)
	expect(t, r, http.StatusOK, "")
	// Local media is never purged.
	local := upload(t, alice, []byte("local"), "text/plain", "")

	expect(t, do(t, alice, http.MethodPost, "/_synapse/admin/v1/purge_media_cache?before_ts=1", nil), http.StatusForbidden, "M_FORBIDDEN")
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/purge_media_cache", nil), http.StatusBadRequest, "M_MISSING_PARAM")
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/purge_media_cache?before_ts=x", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	r = do(t, admin, http.MethodPost, "/_synapse/admin/v1/purge_media_cache?before_ts=1", nil)
	expect(t, r, http.StatusOK, "")
	if r.json["deleted"] != float64(0) {
		t.Fatalf("purge of nothing old: %s", r.body)
	}
	r = do(t, admin, http.MethodPost, fmt.Sprintf("/_synapse/admin/v1/purge_media_cache?before_ts=%d", time.Now().Add(time.Minute).UnixMilli()), nil)
	expect(t, r, http.StatusOK, "")
	if r.json["deleted"] != float64(2) {
		t.Fatalf("purge: %s", r.body)
	}
	expect(t, download(t, alice, local), http.StatusOK, "")
	if n := blobCount(t, srv); n != 1 {
		t.Fatalf("%d blobs after purge, want only the local one", n)
	}
	// Purged media is fetched again on demand.
	expect(t, download(t, alice, "remote.test/abc"), http.StatusOK, "")
	if remote.count() != 4 {
		t.Fatalf("%d fetches, want 4", remote.count())
	}
}
