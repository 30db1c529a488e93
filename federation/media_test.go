package federation_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRemoteMediaDownload(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	content := "hello media over federation"
	res := alice.MustDo(t, http.MethodPost, "/_matrix/media/v3/upload?filename=hello.txt", content)
	uri, _ := res.JSON["content_uri"].(string)
	if !strings.HasPrefix(uri, "mxc://hs1.test/") {
		t.Fatalf("upload: %s", res.Body)
	}
	mediaID := strings.TrimPrefix(uri, "mxc://hs1.test/")

	// The federation endpoint answers a signed request with multipart/mixed.
	ct, name, body, err := newFetcher(t, hs2).Fetch(context.Background(), "hs1.test", mediaID)
	if err != nil {
		t.Fatalf("federation download: %v", err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if string(got) != content || name != "hello.txt" || ct == "" {
		t.Fatalf("federation download: %q %q %q", ct, name, got)
	}
	if _, _, _, err := newFetcher(t, hs2).Fetch(context.Background(), "hs1.test", "nonexistent"); err == nil {
		t.Fatal("unknown media fetched")
	}

	// bob's client fetches through hs2, which caches the remote media.
	res = bob.Do(t, http.MethodGet, "/_matrix/client/v1/media/download/hs1.test/"+mediaID, nil)
	if res.Status != 200 || string(res.Body) != content {
		t.Fatalf("client download of remote media: %d %s", res.Status, res.Body)
	}
	hs1.StopFederation()
	res = bob.Do(t, http.MethodGet, "/_matrix/client/v1/media/download/hs1.test/"+mediaID, nil)
	if res.Status != 200 || string(res.Body) != content {
		t.Fatalf("cached remote media with hs1 unreachable: %d %s", res.Status, res.Body)
	}
	if r := bob.Do(t, http.MethodGet, "/_matrix/client/v1/media/download/hs1.test/nonexistent", nil); r.Status != 404 && r.Status != 502 {
		t.Fatalf("unknown remote media: %d %s", r.Status, r.Body)
	}
}
