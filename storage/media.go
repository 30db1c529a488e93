package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Media is the metadata of one piece of content in the media repository,
// local (uploaded here) or remote (cached from another server). The bytes
// live in a content-addressed blob store under SHA256.
type Media struct {
	Origin      string // server name of the mxc:// URI
	MediaID     string
	UserID      id.UserID // uploader; empty for remote media and URL-preview images
	ContentType string    // as uploaded; empty when unknown
	UploadName  string    // file name given at upload; empty for none
	Size        int64
	SHA256      string // hex; empty while an asynchronous upload is pending
	CreatedTS   int64  // ms; for remote media, when it was first fetched
	// UploadedTS is when the bytes arrived (ms); 0 while pending.
	UploadedTS int64
	// ExpiresTS is when a pending media ID created with /create expires (ms); 0 for none.
	ExpiresTS    int64
	LastAccessTS int64
	// QuarantinedBy is the admin who quarantined the media; empty when it is not.
	QuarantinedBy string
}

// Pending reports whether the media ID was created but nothing was uploaded yet.
func (m *Media) Pending() bool { return m.UploadedTS == 0 }

// Thumbnail is a cached thumbnail of a media item. Width, Height, Method and
// Animated are the request it answers; ActualWidth/Height its real size.
type Thumbnail struct {
	Origin       string
	MediaID      string
	Width        int
	Height       int
	Method       string // "crop" or "scale"
	Animated     bool
	ContentType  string
	Size         int64
	SHA256       string
	ActualWidth  int
	ActualHeight int
	CreatedTS    int64
}

// MediaRef names one media item.
type MediaRef struct {
	Origin  string
	MediaID string
}

// MediaOrder names the columns a media list may be ordered by (Synapse's order_by values).
var MediaOrder = map[string]bool{
	"media_id": true, "upload_name": true, "created_ts": true, "last_access_ts": true,
	"media_length": true, "media_type": true, "quarantined_by": true, "safe_from_quarantine": true,
}

// MediaListQuery pages through a media list: OrderBy is a key of MediaOrder
// ("" for created_ts), Desc reverses it.
type MediaListQuery struct {
	From, Limit int
	OrderBy     string
	Desc        bool
}

// MediaStore keeps media metadata, cached thumbnails and URL previews.
// Methods that delete rows return the SHA-256 hashes no row references any
// more, so the caller can delete those blobs.
type MediaStore interface {
	// CreatePendingMedia stores a media ID reserved with /create, unless
	// userID already has maxPending unexpired pending IDs (then ErrTooLarge);
	// ErrConflict if the ID exists.
	CreatePendingMedia(ctx context.Context, m Media, maxPending int, now int64) error
	// StoreMedia stores uploaded or fetched media. When content with the same
	// hash is quarantined the new row is quarantined too (and QuarantinedBy is
	// set in m). ErrConflict if the ID exists.
	StoreMedia(ctx context.Context, m *Media) error
	// CompletePendingMedia fills in a pending media ID created by m.UserID:
	// ErrNotFound if it does not exist or has expired, ErrConflict if it has
	// content already, ErrForbidden if another user created it.
	CompletePendingMedia(ctx context.Context, m *Media, now int64) error
	// GetMedia returns one media item; ErrNotFound if there is none.
	GetMedia(ctx context.Context, origin, mediaID string) (*Media, error)
	// TouchMedia sets last_access_ts.
	TouchMedia(ctx context.Context, origin, mediaID string, ts int64) error

	// QuarantineMedia quarantines the media and every item with the same
	// content, returning how many rows changed; ErrNotFound if it does not exist.
	QuarantineMedia(ctx context.Context, ref MediaRef, by string) (int, error)
	// UnquarantineMedia lifts the quarantine of the media and every item with the same content.
	UnquarantineMedia(ctx context.Context, ref MediaRef) error
	// QuarantineMediaRefs quarantines the listed media (unknown ones are
	// skipped) and all items sharing their content; it returns how many rows changed.
	QuarantineMediaRefs(ctx context.Context, refs []MediaRef, by string) (int, error)
	// QuarantineUserMedia quarantines every item uploaded by userID and all
	// items sharing their content; it returns how many rows changed.
	QuarantineUserMedia(ctx context.Context, userID id.UserID, by string) (int, error)

	// DeleteMedia deletes media rows and their thumbnails, returning the
	// deleted refs and the hashes no longer referenced.
	DeleteMedia(ctx context.Context, refs []MediaRef) (deleted []MediaRef, freed []string, err error)
	// ListUserMedia returns one page of the media uploaded by userID in the
	// order q asks for (ties broken by ascending media ID) and how many there are in all.
	ListUserMedia(ctx context.Context, userID id.UserID, q MediaListQuery) ([]Media, int, error)
	// LocalMediaBefore lists local media (origin = localServer) with content
	// that was last accessed before ts (or uploaded then, if never accessed)
	// and is larger than sizeGT bytes, oldest first.
	LocalMediaBefore(ctx context.Context, localServer string, ts, sizeGT int64) ([]MediaRef, error)
	// AvatarMediaURIs lists the mxc:// URIs in use as avatars: profile
	// avatars, avatars in current room memberships and current room avatars.
	AvatarMediaURIs(ctx context.Context) ([]string, error)
	// RemoteMediaBefore lists remote media (origin ≠ localServer) last accessed before ts.
	RemoteMediaBefore(ctx context.Context, localServer string, ts int64) ([]MediaRef, error)
	// ExpiredPendingMedia lists pending media IDs that expired before now.
	ExpiredPendingMedia(ctx context.Context, now int64) ([]MediaRef, error)

	// BlobInUse reports whether any media or thumbnail row references the hash.
	BlobInUse(ctx context.Context, sha256 string) (bool, error)

	// StoreThumbnail stores (or replaces) a cached thumbnail, returning the
	// hash of a replaced thumbnail that is no longer referenced, or "".
	StoreThumbnail(ctx context.Context, th Thumbnail) (freed string, err error)
	// GetThumbnail returns the cached thumbnail answering the request; ErrNotFound if none.
	GetThumbnail(ctx context.Context, origin, mediaID string, width, height int, method string, animated bool) (*Thumbnail, error)
	// Thumbnails lists the cached thumbnails of one media item.
	Thumbnails(ctx context.Context, origin, mediaID string) ([]Thumbnail, error)

	// GetURLPreview returns the cached OpenGraph JSON of url if it has not
	// expired at now; ErrNotFound otherwise.
	GetURLPreview(ctx context.Context, url string, now int64) ([]byte, error)
	// StoreURLPreview caches the OpenGraph JSON of url until expiresTS.
	StoreURLPreview(ctx context.Context, url string, og []byte, fetchedTS, expiresTS int64) error
}
