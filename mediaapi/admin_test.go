package mediaapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
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

// blobExists reports whether the blob store still holds content.
func blobExists(t *testing.T, srv *testserver.Server, content []byte) bool {
	t.Helper()
	blobs, err := blob.NewLocal(srv.Cfg.Media.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	obj, err := blobs.Open(context.Background(), hex.EncodeToString(sum[:]))
	if err != nil {
		return false
	}
	obj.Close()
	return true
}

func mediaIDs(t *testing.T, r *response, key string) []string {
	t.Helper()
	var out []string
	list, _ := r.json[key].([]any)
	for _, m := range list {
		switch v := m.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			out = append(out, v["media_id"].(string))
		}
	}
	return out
}

func localID(media string) string { return strings.TrimPrefix(media, "hs1.test/") }

func TestListUserMedia(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	var mine []string
	for i, size := range []int{30, 10, 20} {
		mine = append(mine, upload(t, alice, randomBytes(t, size), "text/plain", fmt.Sprintf("f%d.txt", i)))
		time.Sleep(2 * time.Millisecond) // distinct created_ts
	}
	upload(t, bob, []byte("bob's"), "text/plain", "")
	path := "/_synapse/admin/v1/users/" + testserver.PathEscape(string(alice.UserID)) + "/media"

	expect(t, do(t, alice, http.MethodGet, path, nil), http.StatusForbidden, "M_FORBIDDEN")
	r := do(t, admin, http.MethodGet, path, nil)
	expect(t, r, http.StatusOK, "")
	// Newest first by default.
	if got := mediaIDs(t, r, "media"); fmt.Sprint(got) != fmt.Sprint([]string{localID(mine[2]), localID(mine[1]), localID(mine[0])}) || r.json["total"] != float64(3) {
		t.Fatalf("default list: %s", r.body)
	}
	if _, ok := r.json["next_token"]; ok {
		t.Fatalf("next_token on the only page: %s", r.body)
	}
	first := r.json["media"].([]any)[2].(map[string]any)
	if first["media_length"] != float64(30) || first["media_type"] != "text/plain" || first["upload_name"] != "f0.txt" ||
		first["quarantined_by"] != nil || first["safe_from_quarantine"] != false || first["created_ts"] == nil {
		t.Fatalf("media entry: %v", first)
	}
	// Ordered by size, paginated two at a time.
	r = do(t, admin, http.MethodGet, path+"?order_by=media_length&limit=2", nil)
	expect(t, r, http.StatusOK, "")
	if got := mediaIDs(t, r, "media"); fmt.Sprint(got) != fmt.Sprint([]string{localID(mine[1]), localID(mine[2])}) || r.json["next_token"] != float64(2) || r.json["total"] != float64(3) {
		t.Fatalf("page 1: %s", r.body)
	}
	r = do(t, admin, http.MethodGet, path+"?order_by=media_length&limit=2&from=2", nil)
	if got := mediaIDs(t, r, "media"); fmt.Sprint(got) != fmt.Sprint([]string{localID(mine[0])}) || r.json["next_token"] != nil {
		t.Fatalf("page 2: %s", r.body)
	}
	r = do(t, admin, http.MethodGet, path+"?order_by=media_length&dir=b", nil)
	if got := mediaIDs(t, r, "media"); fmt.Sprint(got) != fmt.Sprint([]string{localID(mine[0]), localID(mine[2]), localID(mine[1])}) {
		t.Fatalf("by size backwards: %s", r.body)
	}
	for q, code := range map[string]string{"?from=-1": "M_INVALID_PARAM", "?limit=x": "M_INVALID_PARAM", "?order_by=sha256": "M_INVALID_PARAM", "?dir=up": "M_INVALID_PARAM"} {
		expect(t, do(t, admin, http.MethodGet, path+q, nil), http.StatusBadRequest, code)
	}
	expect(t, do(t, admin, http.MethodGet, "/_synapse/admin/v1/users/"+testserver.PathEscape("@nobody:hs1.test")+"/media", nil), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, do(t, admin, http.MethodGet, "/_synapse/admin/v1/users/"+testserver.PathEscape("@x:elsewhere.test")+"/media", nil), http.StatusBadRequest, "M_INVALID_PARAM")

	// DELETE takes the same parameters: the largest one first, then the rest.
	r = do(t, admin, http.MethodDelete, path+"?order_by=media_length&dir=b&limit=1", nil)
	expect(t, r, http.StatusOK, "")
	if got := mediaIDs(t, r, "deleted_media"); fmt.Sprint(got) != fmt.Sprint([]string{localID(mine[0])}) || r.json["total"] != float64(1) {
		t.Fatalf("delete largest: %s", r.body)
	}
	expect(t, download(t, bob, mine[0]), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, download(t, bob, mine[1]), http.StatusOK, "")
	if r := do(t, admin, http.MethodGet, path, nil); r.json["total"] != float64(2) {
		t.Fatalf("after deleting one: %s", r.body)
	}
}

func TestDeleteMediaByDateAndSize(t *testing.T) {
	srv := newServer(t)
	admin := makeAdmin(t, srv, "admin")
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	ctx := context.Background()
	oldSmall, oldLarge, recent, avatarBytes, sharedBytes := randomBytes(t, 10), randomBytes(t, 100), randomBytes(t, 100), randomBytes(t, 100), randomBytes(t, 100)
	a := map[string]string{
		"oldSmall": upload(t, alice, oldSmall, "text/plain", ""),
		"oldLarge": upload(t, alice, oldLarge, "text/plain", ""),
		"recent":   upload(t, alice, recent, "text/plain", ""),
		"avatar":   upload(t, alice, avatarBytes, "image/png", ""),
		"shared":   upload(t, alice, sharedBytes, "text/plain", ""),
	}
	bobShared := upload(t, bob, sharedBytes, "text/plain", "") // same content: one blob
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/avatar_url", alice.UserID), map[string]any{"avatar_url": "mxc://" + a["avatar"]})
	old := time.Now().Add(-48 * time.Hour).UnixMilli()
	for _, k := range []string{"oldSmall", "oldLarge", "avatar", "shared"} {
		if err := srv.HS.Store.TouchMedia(ctx, "hs1.test", localID(a[k]), old); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := fmt.Sprint(time.Now().Add(-24 * time.Hour).UnixMilli())

	expect(t, do(t, alice, http.MethodPost, "/_synapse/admin/v1/media/delete?before_ts="+cutoff, nil), http.StatusForbidden, "M_FORBIDDEN")
	for q, code := range map[string]string{
		"":                                     "M_MISSING_PARAM",
		"?before_ts=soon":                      "M_INVALID_PARAM",
		"?before_ts=1700000000":                "M_INVALID_PARAM", // seconds, not ms
		"?before_ts=" + cutoff + "&size_gt=-1": "M_INVALID_PARAM",
		"?before_ts=" + cutoff + "&keep_profiles=no": "M_INVALID_PARAM",
	} {
		expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/delete"+q, nil), http.StatusBadRequest, code)
	}
	expect(t, do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/other.test/delete?before_ts="+cutoff, nil), http.StatusBadRequest, "M_INVALID_PARAM")

	// Old and larger than 50 bytes, avatars kept: oldLarge and alice's shared copy.
	r := do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/delete?before_ts="+cutoff+"&size_gt=50", nil)
	expect(t, r, http.StatusOK, "")
	got := mediaIDs(t, r, "deleted_media")
	sort.Strings(got)
	want := []string{localID(a["oldLarge"]), localID(a["shared"])}
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) || r.json["total"] != float64(2) {
		t.Fatalf("deleted %s, want %v", r.body, want)
	}
	expect(t, download(t, bob, a["oldLarge"]), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, download(t, bob, a["shared"]), http.StatusNotFound, "M_NOT_FOUND")
	if blobExists(t, srv, oldLarge) {
		t.Fatal("blob of deleted media still stored")
	}
	// Bob's row still references the shared content.
	if r := download(t, bob, bobShared); r.status != http.StatusOK || !bytes.Equal(r.body, sharedBytes) || !blobExists(t, srv, sharedBytes) {
		t.Fatalf("shared content gone with one of its references: %d", r.status)
	}
	for _, k := range []string{"oldSmall", "recent", "avatar"} {
		expect(t, download(t, bob, a[k]), http.StatusOK, "")
	}
	// The deprecated path with keep_profiles=false also takes the avatar
	// (downloading above touched oldSmall and the avatar: age them again).
	for _, k := range []string{"oldSmall", "avatar"} {
		if err := srv.HS.Store.TouchMedia(ctx, "hs1.test", localID(a[k]), old); err != nil {
			t.Fatal(err)
		}
	}
	r = do(t, admin, http.MethodPost, "/_synapse/admin/v1/media/hs1.test/delete?before_ts="+cutoff+"&keep_profiles=false", nil)
	expect(t, r, http.StatusOK, "")
	if r.json["total"] != float64(2) {
		t.Fatalf("second delete: %s", r.body)
	}
	for _, k := range []string{"oldSmall", "avatar"} {
		expect(t, download(t, bob, a[k]), http.StatusNotFound, "M_NOT_FOUND")
	}
	if blobExists(t, srv, oldSmall) || blobExists(t, srv, avatarBytes) {
		t.Fatal("blobs of deleted media still stored")
	}
	expect(t, download(t, bob, a["recent"]), http.StatusOK, "")
}
