package adminapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// restrictions caches every user restriction, room block and rate-limit
// override in memory, so that requests of unrestricted users cost nothing.
// Admin endpoints of this process update it; changes made by other processes
// sharing a PostgreSQL database arrive through the store's change feed
// (WatchChanges), which reloads it.
type restrictions struct {
	mu        sync.RWMutex // guards the maps
	m         map[id.UserID]storage.Restrictions
	blocked   map[id.RoomID]id.UserID
	overrides map[id.UserID]storage.RateLimitOverride
}

func (rs *restrictions) isBlocked(room id.RoomID) bool {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	_, ok := rs.blocked[room]
	return ok
}

func (rs *restrictions) get(u id.UserID) (storage.Restrictions, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	r, ok := rs.m[u]
	return r, ok
}

func (rs *restrictions) empty() bool {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	return len(rs.m) == 0 && len(rs.blocked) == 0
}

// LoadRestrictions reads the user restrictions (locks, suspensions,
// shadow-bans), blocked rooms and rate-limit overrides into memory; call it
// once before serving, and WatchChanges to keep them current.
func (a *API) LoadRestrictions(ctx context.Context) error {
	m, err := a.store.AllRestrictions(ctx)
	if err != nil {
		return err
	}
	blocked, err := a.store.BlockedRooms(ctx)
	if err != nil {
		return err
	}
	ov, err := a.store.RateLimitOverrides(ctx)
	if err != nil {
		return err
	}
	a.restr.mu.Lock()
	defer a.restr.mu.Unlock()
	a.restr.m, a.restr.blocked = m, blocked
	a.applyOverridesLocked(ov)
	return nil
}

// applyOverridesLocked makes ov the rate-limit overrides, touching only the
// limiters that changed (setting one refills its bucket). restr.mu must be held.
func (a *API) applyOverridesLocked(ov map[id.UserID]storage.RateLimitOverride) {
	for u, o := range ov {
		if old, ok := a.restr.overrides[u]; !ok || old != o {
			a.limits.SetOverride(string(u), o.MessagesPerSecond, o.BurstCount)
		}
	}
	for u := range a.restr.overrides {
		if _, ok := ov[u]; !ok {
			a.limits.ClearOverride(string(u))
		}
	}
	a.restr.overrides = ov
}

// WatchChanges reloads the moderation state whenever any process sharing
// the database changes it, until ctx ends (on SQLite it returns at once:
// there is no other process). Run it in its own goroutine.
func (a *API) WatchChanges(ctx context.Context) {
	err := a.store.ListenChanges(ctx, func(topic string) {
		if topic != "" && topic != storage.TopicModeration {
			return
		}
		if err := a.LoadRestrictions(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("reload moderation state", zap.Error(err))
		}
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("moderation change feed", zap.Error(err))
	}
}

// restrict changes a user's restrictions in the database and the cache.
func (a *API) restrict(ctx context.Context, user id.UserID, change func(*storage.Restrictions)) (storage.Restrictions, error) {
	a.restr.mu.Lock()
	defer a.restr.mu.Unlock()
	r := a.restr.m[user]
	change(&r)
	if err := a.store.SetRestrictions(ctx, user, r); err != nil {
		return r, err
	}
	if r == (storage.Restrictions{}) {
		delete(a.restr.m, user)
	} else {
		a.restr.m[user] = r
	}
	return r, nil
}

// setOverride changes a user's rate-limit override (nil removes it) in the database and the cache.
func (a *API) setOverride(ctx context.Context, user id.UserID, o *storage.RateLimitOverride) error {
	a.restr.mu.Lock()
	defer a.restr.mu.Unlock()
	if err := a.store.SetRateLimitOverride(ctx, user, o); err != nil {
		return err
	}
	ov := make(map[id.UserID]storage.RateLimitOverride, len(a.restr.overrides)+1)
	for u, v := range a.restr.overrides {
		ov[u] = v
	}
	if o == nil {
		delete(ov, user)
	} else {
		ov[user] = *o
	}
	a.applyOverridesLocked(ov)
	return nil
}

// suspendedPaths are the client API actions a suspended user may not take.
var suspendedPaths = regexp.MustCompile(`^/_matrix/client/(?:r0|v3|unstable/[^/]+)/(?:rooms/[^/]+/(?:send|state|invite|join|knock)(?:/|$)|join/|knock/|createRoom$|profile/)`)

// blockedPaths are the client API actions on a room that blocking forbids; group 1, 2 or 3 is the room.
var blockedPaths = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/(?:rooms/([^/]+)/(?:send|state|invite|join|knock)(?:/|$)|join/([^/]+)$|knock/([^/]+)$)`)

// setBlocked blocks or unblocks a room in the database and the cache.
func (a *API) setBlocked(ctx context.Context, room id.RoomID, blocked bool, by id.UserID) error {
	a.restr.mu.Lock()
	defer a.restr.mu.Unlock()
	if err := a.store.SetRoomBlocked(ctx, room, blocked, by); err != nil {
		return err
	}
	if blocked {
		if _, ok := a.restr.blocked[room]; !ok {
			a.restr.blocked[room] = by
		}
	} else {
		delete(a.restr.blocked, room)
	}
	return nil
}

// blockedTarget reports whether a room ID or alias names a blocked room.
func (a *API) blockedTarget(ctx context.Context, target string) bool {
	if strings.HasPrefix(target, "#") {
		room, _, err := a.store.ResolveAlias(ctx, id.RoomAlias(target))
		if err != nil {
			return false
		}
		target = string(room)
	}
	return a.restr.isBlocked(id.RoomID(target))
}

// Client API paths a shadow ban affects (see shadowBanned).
var (
	// PUT /rooms/{roomID}/send/{type}/{txnID} and /rooms/{roomID}/redact/{eventID}/{txnID}.
	sendPath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/rooms/[^/]+/(?:send|redact)/[^/]+/[^/]+$`)
	// PUT /rooms/{roomID}/state/{type}[/{stateKey}]: group 1 is the type, 2 the state key.
	statePath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/rooms/[^/]+/state/([^/]+)(?:/(.*))?$`)
	// POST /rooms/{roomID}/invite.
	invitePath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/rooms/[^/]+/invite$`)
	// PUT /rooms/{roomID}/typing/{userID}: group 1 is the user.
	typingPath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/rooms/[^/]+/typing/([^/]+)$`)
	// POST /rooms/{roomID}/receipt/m.read/{eventID}: group 1 ends before the receipt type.
	receiptPath = regexp.MustCompile(`^(/_matrix/client/(?:r0|v3)/rooms/[^/]+/receipt/)m\.read(/[^/]+)$`)
	// POST /rooms/{roomID}/read_markers.
	readMarkersPath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/rooms/[^/]+/read_markers$`)
	// PUT and DELETE /profile/{userID}/{field}: group 1 is the user.
	profilePath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/profile/([^/]+)/[^/]+$`)
	// POST /createRoom.
	createRoomPath = regexp.MustCompile(`^/_matrix/client/(?:r0|v3)/createRoom$`)
)

// shadowBanned serves the requests of a shadow-banned user that, as in
// Synapse, must seem to succeed without anyone else seeing their effect:
// messages, redactions and state events get a made-up event ID (changes to
// the user's own membership go through, so they can still join and leave),
// invites and typing notifications are dropped, profile changes are not
// made, and createRoom creates the room without its invites. Public read
// receipts become private ones, so the user's own unread counts still move.
// It returns false for requests it leaves to the handler.
func (a *API) shadowBanned(w http.ResponseWriter, r *http.Request, user id.UserID) bool {
	p := r.URL.EscapedPath() // path segments may hold escaped slashes
	fake := func(body any) bool {
		_ = httputil.WriteJSON(w, http.StatusOK, body)
		return true
	}
	switch r.Method {
	case http.MethodPut:
		if sendPath.MatchString(p) {
			return fake(map[string]string{"event_id": fakeEventID()})
		}
		if m := statePath.FindStringSubmatch(p); m != nil {
			evType, _ := url.PathUnescape(m[1])
			stateKey, _ := url.PathUnescape(m[2])
			if evType == "m.room.member" && stateKey == string(user) {
				return false
			}
			return fake(map[string]string{"event_id": fakeEventID()})
		}
		if m := typingPath.FindStringSubmatch(p); m != nil && pathUserIs(m[1], user) {
			return fake(map[string]any{})
		}
		if m := profilePath.FindStringSubmatch(p); m != nil && pathUserIs(m[1], user) {
			return fake(map[string]any{})
		}
	case http.MethodDelete:
		if m := profilePath.FindStringSubmatch(p); m != nil && pathUserIs(m[1], user) {
			return fake(map[string]any{})
		}
	case http.MethodPost:
		switch {
		case invitePath.MatchString(p):
			return fake(map[string]any{})
		case receiptPath.MatchString(p):
			esc := receiptPath.ReplaceAllString(p, "${1}m.read.private${2}")
			if dec, err := url.PathUnescape(esc); err == nil {
				r.URL.Path, r.URL.RawPath = dec, esc
			}
		case readMarkersPath.MatchString(p):
			rewriteBody(r, func(body map[string]json.RawMessage) {
				if v, ok := body["m.read"]; ok {
					if _, both := body["m.read.private"]; !both {
						body["m.read.private"] = v
					}
					delete(body, "m.read")
				}
			})
		case createRoomPath.MatchString(p):
			rewriteBody(r, func(body map[string]json.RawMessage) {
				delete(body, "invite")
				delete(body, "invite_3pid")
			})
		}
	}
	return false
}

// pathUserIs reports whether an escaped path segment names user.
func pathUserIs(seg string, user id.UserID) bool {
	u, err := url.PathUnescape(seg)
	return err == nil && u == string(user)
}

// rewriteBody changes a JSON object request body; a body that is not one is
// left for the handler to reject.
func rewriteBody(r *http.Request, change func(map[string]json.RawMessage)) {
	raw, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err != nil {
		return
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(raw, &body) != nil || body == nil {
		return
	}
	change(body)
	out, err := json.Marshal(body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
}

// Restrict enforces user restrictions in front of every client-server API
// handler: locked users get 401 M_USER_LOCKED (soft logout) on every
// authenticated request but logout, suspended users 403 M_USER_SUSPENDED on
// sending, joining, inviting, creating rooms and profile changes, and
// shadow-banned users fake success for what others would see (shadowBanned).
func (a *API) Restrict(next http.Handler) http.Handler {
	next = a.auditOtherAdminCalls(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.restr.empty() || !strings.HasPrefix(r.URL.Path, "/_matrix/") {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet {
			if m := blockedPaths.FindStringSubmatch(r.URL.Path); m != nil && a.blockedTarget(r.Context(), m[1]+m[2]+m[3]) {
				_ = httputil.WriteJSON(w, http.StatusForbidden, httputil.Forbidden("This room has been blocked on this server"))
				return
			}
		}
		tok, ok := authn.Token(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		dev, err := a.auth.Authenticate(authn.RequestContext(r), tok)
		if err != nil {
			next.ServeHTTP(w, r) // the handler answers the bad token
			return
		}
		rs, ok := a.restr.get(dev.UserID)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		p := r.URL.Path
		switch {
		case rs.Locked && !strings.HasSuffix(p, "/logout") && !strings.HasSuffix(p, "/logout/all"):
			_ = httputil.WriteJSON(w, http.StatusUnauthorized,
				httputil.Errorf(http.StatusUnauthorized, httputil.CodeUserLocked, "This account has been locked").With("soft_logout", true))
		case rs.Suspended && r.Method != http.MethodGet && suspendedPaths.MatchString(p):
			_ = httputil.WriteJSON(w, http.StatusForbidden,
				httputil.Errorf(http.StatusForbidden, httputil.CodeUserSuspended, "This account has been suspended"))
		case rs.ShadowBanned && a.shadowBanned(w, r, dev.UserID):
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// shadowBan handles POST and DELETE /_synapse/admin/v1/users/{userID}/shadow_ban.
func (a *API) shadowBan(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.existingLocalUser(r)
	if err != nil {
		return err
	}
	on := r.Method == http.MethodPost
	if _, err := a.restrict(r.Context(), user, func(rs *storage.Restrictions) { rs.ShadowBanned = on }); err != nil {
		return err
	}
	a.Audit(r.Context(), "shadow_ban", dev, string(user), map[string]any{"shadow_banned": on})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// suspend handles PUT /_synapse/admin/v1/suspend/{userID} {"suspend": bool}.
func (a *API) suspend(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	var req struct {
		Suspend *bool `json:"suspend"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.Suspend == nil {
		return httputil.MissingParam("suspend is required")
	}
	if _, err := a.accountInfo(r.Context(), user); err != nil {
		return err
	}
	if _, err := a.restrict(r.Context(), user, func(rs *storage.Restrictions) { rs.Suspended = *req.Suspend }); err != nil {
		return err
	}
	a.Audit(r.Context(), "suspension", dev, string(user), map[string]any{"suspended": *req.Suspend})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"user_" + string(user) + "_suspended": *req.Suspend})
}

// setLocked locks or unlocks a user (PUT /v2/users/{userID} with "locked").
func (a *API) setLocked(ctx context.Context, dev *authn.Device, user id.UserID, locked bool) error {
	if user == dev.UserID && locked {
		return errors.New("admins may not lock themselves")
	}
	if _, err := a.restrict(ctx, user, func(rs *storage.Restrictions) { rs.Locked = locked }); err != nil {
		return err
	}
	a.Audit(ctx, "lock", dev, string(user), map[string]any{"locked": locked})
	return nil
}

// fakeEventID looks like a room v4+ event ID (43 characters of unpadded URL-safe base64).
func fakeEventID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "$" + base64.RawURLEncoding.EncodeToString(b)
}

// auditedKey marks, in a request context, whether the request has been audited.
type auditedKey struct{}

// statusWriter records the response status.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// auditOtherAdminCalls audits successful admin API calls served by other
// components (media quarantine and deletion in mediaapi, registration tokens
// in clientapi): this package's own admin endpoints audit themselves.
func (a *API) auditOtherAdminCalls(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, "/_synapse/admin/") || r.Method == http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		audited := new(bool)
		r = r.WithContext(context.WithValue(r.Context(), auditedKey{}, audited))
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if *audited || rec.status >= 300 {
			return
		}
		tok, ok := authn.Token(r)
		if !ok {
			return
		}
		dev, err := a.auth.Authenticate(r.Context(), tok)
		if err != nil || !dev.IsAdmin {
			return
		}
		details := map[string]any{"method": r.Method}
		a.Audit(r.Context(), "admin_api", dev, p, details)
		if strings.Contains(p, "quarantine") {
			a.Audit(r.Context(), "media_quarantine", dev, p, details)
		}
	})
}
