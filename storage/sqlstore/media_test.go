package sqlstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
	"parley/storage/sqlstore"
)

func hash(c byte) string { return strings.Repeat(string(c), 64) }

func TestMediaStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		const now = 1_000_000
		// Pending IDs: limited per user, completed only by their creator, once, before expiry.
		for i, mid := range []string{"p1", "p2"} {
			err := s.CreatePendingMedia(ctx, storage.Media{Origin: "hs", MediaID: mid, UserID: "@a:hs", CreatedTS: now, ExpiresTS: now + 1000 + int64(i)}, 2, now)
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreatePendingMedia(ctx, storage.Media{Origin: "hs", MediaID: "p3", UserID: "@a:hs", CreatedTS: now, ExpiresTS: now + 1000}, 2, now); !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("third pending: %v", err)
		}
		if err := s.CreatePendingMedia(ctx, storage.Media{Origin: "hs", MediaID: "p1", UserID: "@b:hs", CreatedTS: now, ExpiresTS: now + 1000}, 2, now); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("duplicate id: %v", err)
		}
		up := storage.Media{Origin: "hs", MediaID: "p1", UserID: "@b:hs", SHA256: hash('a'), Size: 3, UploadedTS: now + 1}
		if err := s.CompletePendingMedia(ctx, &up, now+1); !errors.Is(err, storage.ErrForbidden) {
			t.Fatalf("other user: %v", err)
		}
		up.UserID = "@a:hs"
		if err := s.CompletePendingMedia(ctx, &up, now+1); err != nil {
			t.Fatal(err)
		}
		if err := s.CompletePendingMedia(ctx, &up, now+1); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("second upload: %v", err)
		}
		late := storage.Media{Origin: "hs", MediaID: "p2", UserID: "@a:hs", SHA256: hash('b'), UploadedTS: now + 5000}
		if err := s.CompletePendingMedia(ctx, &late, now+5000); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("expired: %v", err)
		}
		exp, err := s.ExpiredPendingMedia(ctx, now+5000)
		if err != nil || len(exp) != 1 || exp[0].MediaID != "p2" {
			t.Fatalf("expired pending: %v %v", exp, err)
		}
		m, err := s.GetMedia(ctx, "hs", "p1")
		if err != nil || m.Pending() || m.SHA256 != hash('a') || m.CreatedTS != now {
			t.Fatalf("completed: %+v %v", m, err)
		}

		// Quarantine spreads to rows with the same content, and to later uploads of it.
		for _, mid := range []string{"x1", "x2"} {
			if err := s.StoreMedia(ctx, &storage.Media{Origin: "hs", MediaID: mid, UserID: "@b:hs", SHA256: hash('a'), Size: 3, CreatedTS: now, UploadedTS: now}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.QuarantineMedia(ctx, storage.MediaRef{Origin: "hs", MediaID: "x1"}, "@admin:hs")
		if err != nil || n != 3 {
			t.Fatalf("quarantined %d, %v; want 3 rows with the same hash", n, err)
		}
		if _, err := s.QuarantineMedia(ctx, storage.MediaRef{Origin: "hs", MediaID: "nope"}, "@admin:hs"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
		again := storage.Media{Origin: "hs", MediaID: "x3", SHA256: hash('a'), CreatedTS: now, UploadedTS: now}
		if err := s.StoreMedia(ctx, &again); err != nil || again.QuarantinedBy != "@admin:hs" {
			t.Fatalf("re-upload of quarantined content: %q %v", again.QuarantinedBy, err)
		}
		if err := s.UnquarantineMedia(ctx, storage.MediaRef{Origin: "hs", MediaID: "x2"}); err != nil {
			t.Fatal(err)
		}
		for _, mid := range []string{"p1", "x1", "x2", "x3"} {
			if m, _ := s.GetMedia(ctx, "hs", mid); m.QuarantinedBy != "" {
				t.Fatalf("%s still quarantined", mid)
			}
		}
		if n, err := s.QuarantineUserMedia(ctx, "@b:hs", "@admin:hs"); err != nil || n != 4 {
			t.Fatalf("user quarantine changed %d, %v; want 4 (b's two and two sharing content)", n, err)
		}

		// Thumbnails and deletion: a hash is freed only once nothing references it.
		th := storage.Thumbnail{Origin: "hs", MediaID: "x1", Width: 32, Height: 32, Method: "crop", ContentType: "image/png", SHA256: hash('t'), ActualWidth: 32, ActualHeight: 32}
		if freed, err := s.StoreThumbnail(ctx, th); err != nil || freed != "" {
			t.Fatal(freed, err)
		}
		th.SHA256 = hash('u')
		if freed, err := s.StoreThumbnail(ctx, th); err != nil || freed != hash('t') {
			t.Fatalf("replaced thumbnail freed %q, %v", freed, err)
		}
		got, err := s.GetThumbnail(ctx, "hs", "x1", 32, 32, "crop", false)
		if err != nil || got.SHA256 != hash('u') {
			t.Fatalf("thumbnail %+v %v", got, err)
		}
		deleted, freed, err := s.DeleteMedia(ctx, []storage.MediaRef{{Origin: "hs", MediaID: "x1"}, {Origin: "hs", MediaID: "gone"}})
		if err != nil || len(deleted) != 1 || len(freed) != 1 || freed[0] != hash('u') {
			t.Fatalf("delete x1: %v freed %v, %v (content still used by others)", deleted, freed, err)
		}
		_, freed, err = s.DeleteMedia(ctx, []storage.MediaRef{{Origin: "hs", MediaID: "x2"}, {Origin: "hs", MediaID: "x3"}, {Origin: "hs", MediaID: "p1"}})
		if err != nil || len(freed) != 1 || freed[0] != hash('a') {
			t.Fatalf("delete the rest: freed %v, %v", freed, err)
		}

		// Remote media by last access; URL preview cache expiry.
		if err := s.StoreMedia(ctx, &storage.Media{Origin: "remote", MediaID: "r", SHA256: hash('r'), CreatedTS: now, UploadedTS: now, LastAccessTS: now}); err != nil {
			t.Fatal(err)
		}
		if used, err := s.BlobInUse(ctx, hash('r')); err != nil || !used {
			t.Fatalf("blob of remote media in use: %v %v", used, err)
		}
		if used, err := s.BlobInUse(ctx, hash('a')); err != nil || used {
			t.Fatalf("blob of deleted media in use: %v %v", used, err)
		}
		if refs, _ := s.RemoteMediaBefore(ctx, "hs", now); len(refs) != 0 {
			t.Fatalf("accessed at now is not before now: %v", refs)
		}
		if refs, _ := s.RemoteMediaBefore(ctx, "hs", now+1); len(refs) != 1 {
			t.Fatalf("remote before now+1: %v", refs)
		}
		if err := s.StoreURLPreview(ctx, "https://x/", []byte(`{"og:title":"x"}`), now, now+10); err != nil {
			t.Fatal(err)
		}
		if og, err := s.GetURLPreview(ctx, "https://x/", now+9); err != nil || string(og) != `{"og:title":"x"}` {
			t.Fatalf("preview: %s %v", og, err)
		}
		if _, err := s.GetURLPreview(ctx, "https://x/", now+10); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("expired preview: %v", err)
		}
	})
}

func TestMediaLists(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		add := func(origin, mid, user string, size, created, access int64) {
			t.Helper()
			m := storage.Media{Origin: origin, MediaID: mid, UserID: id.UserID(user), SHA256: hash(mid[0]), Size: size,
				CreatedTS: created, UploadedTS: created, LastAccessTS: access, UploadName: "n" + mid}
			if err := s.StoreMedia(ctx, &m); err != nil {
				t.Fatal(err)
			}
		}
		add("hs", "a", "@u:hs", 30, 100, 500)
		add("hs", "b", "@u:hs", 10, 200, 0)
		add("hs", "c", "@u:hs", 20, 300, 900)
		add("hs", "d", "@v:hs", 99, 100, 100)
		add("remote", "e", "", 99, 100, 100)
		if err := s.CreatePendingMedia(ctx, storage.Media{Origin: "hs", MediaID: "p", UserID: "@u:hs", CreatedTS: 50, ExpiresTS: 1 << 40}, 5, 50); err != nil {
			t.Fatal(err)
		}
		ids := func(ms []storage.Media) string {
			var b strings.Builder
			for _, m := range ms {
				b.WriteString(m.MediaID)
			}
			return b.String()
		}
		for _, tc := range []struct {
			q    storage.MediaListQuery
			want string
		}{
			{storage.MediaListQuery{Limit: 10, OrderBy: "created_ts", Desc: true}, "cbap"},
			{storage.MediaListQuery{Limit: 10, OrderBy: "media_length"}, "pbca"},
			{storage.MediaListQuery{Limit: 2, From: 1, OrderBy: "media_id", Desc: true}, "cb"},
			{storage.MediaListQuery{Limit: 10, OrderBy: "safe_from_quarantine"}, "abcp"},
		} {
			ms, total, err := s.ListUserMedia(ctx, "@u:hs", tc.q)
			if err != nil || total != 4 || ids(ms) != tc.want {
				t.Fatalf("%+v: %s (total %d, %v), want %s", tc.q, ids(ms), total, err, tc.want)
			}
		}
		// Last access, or upload when never accessed; local, uploaded, larger than size_gt.
		refs, err := s.LocalMediaBefore(ctx, "hs", 600, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range refs {
			got = append(got, r.MediaID)
		}
		if strings.Join(got, "") != "adb" {
			t.Fatalf("before 600: %v", got)
		}
		if refs, _ := s.LocalMediaBefore(ctx, "hs", 600, 25); len(refs) != 2 {
			t.Fatalf("before 600, > 25 bytes: %v", refs)
		}
	})
}
