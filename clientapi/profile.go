package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"unicode/utf8"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Profile limits: the spec caps a profile at 64 KiB and keys at 255 bytes;
// displayname and avatar_url follow Synapse's limits.
const (
	maxProfileBytes       = 64 << 10
	maxProfileKeyBytes    = 255
	maxDisplayNameLength  = 256 // characters
	maxAvatarURLLength    = 1000
	profileFieldDisplay   = "displayname"
	profileFieldAvatarURL = "avatar_url"
)

// profileKeyPattern is the spec's keyName pattern for PUT /profile/{userId}/{keyName} (v1.16).
var profileKeyPattern = regexp.MustCompile(`^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$`)

// loadProfile returns a local user's profile, 404 M_NOT_FOUND for unknown or remote users.
func (a *API) loadProfile(r *http.Request, userID id.UserID) (map[string]json.RawMessage, error) {
	_, server, err := userID.Parse()
	if err != nil {
		return nil, httputil.InvalidParam("invalid user ID")
	}
	if server != a.cfg.ServerName {
		if a.remote == nil {
			return nil, httputil.NotFound("Profile not found")
		}
		p, err := a.remote.QueryProfile(r.Context(), userID, "")
		if err != nil {
			a.log.Debug("remote profile lookup failed", zap.String("user_id", string(userID)), zap.Error(err))
			return nil, httputil.NotFound("Profile not found")
		}
		return p, nil
	}
	p, err := a.store.GetProfile(r.Context(), userID)
	if errors.Is(err, storage.ErrNotFound) && a.EnsureAppServiceUser(r.Context(), userID) {
		// A user of an application service may exist without being registered yet.
		p, err = a.store.GetProfile(r.Context(), userID)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("Profile not found")
	}
	return p, err
}

// getProfile handles GET /profile/{userId}.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := a.loadProfile(r, id.UserID(httputil.PathVar(r, "userId")))
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, p)
}

// getProfileField handles GET /profile/{userId}/{keyName}.
func (a *API) getProfileField(w http.ResponseWriter, r *http.Request) error {
	key := httputil.PathVar(r, "keyName")
	p, err := a.loadProfile(r, id.UserID(httputil.PathVar(r, "userId")))
	if err != nil {
		return err
	}
	v, ok := p[key]
	if !ok {
		return httputil.NotFound("Profile field not found")
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]json.RawMessage{key: v})
}

// checkOwnProfile checks the path names the requester and a valid key.
func checkOwnProfile(r *http.Request, dev *authn.Device) (string, error) {
	if id.UserID(httputil.PathVar(r, "userId")) != dev.UserID {
		return "", httputil.Forbidden("You may only change your own profile")
	}
	key := httputil.PathVar(r, "keyName")
	if len(key) > maxProfileKeyBytes {
		return "", httputil.Errorf(http.StatusBadRequest, httputil.CodeKeyTooLarge, "Profile key is longer than %d bytes", maxProfileKeyBytes)
	}
	if !profileKeyPattern.MatchString(key) {
		return "", httputil.InvalidParam("Invalid profile key")
	}
	return key, nil
}

// setProfileField handles PUT /profile/{userId}/{keyName}.
func (a *API) setProfileField(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	key, err := checkOwnProfile(r, dev)
	if err != nil {
		return err
	}
	if dev.IsGuest && key != profileFieldDisplay {
		// The spec's guest access list allows only PUT .../displayname.
		return httputil.Errorf(http.StatusForbidden, httputil.CodeGuestAccessForbidden, "Guests may only set a display name")
	}
	var body map[string]json.RawMessage
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	value, ok := body[key]
	if !ok {
		return httputil.MissingParam("the body must contain %q", key)
	}
	if err := validateProfileValue(key, value); err != nil {
		return err
	}
	err = a.store.SetProfileField(r.Context(), dev.UserID, key, value, maxProfileBytes)
	switch {
	case errors.Is(err, storage.ErrTooLarge):
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeProfileTooLarge, "The profile would exceed %d bytes", maxProfileBytes)
	case errors.Is(err, storage.ErrNotFound):
		return httputil.NotFound("Profile not found")
	case err != nil:
		return err
	}
	a.notifyProfile(r, dev.UserID, key)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// validateProfileValue applies the type rules of the known keys.
func validateProfileValue(key string, value json.RawMessage) error {
	var s string
	switch key {
	case profileFieldDisplay, profileFieldAvatarURL, "m.tz":
		if err := json.Unmarshal(value, &s); err != nil || string(value) == "null" {
			return httputil.BadJSON("%s must be a string", key)
		}
	default:
		return nil
	}
	switch key {
	case profileFieldDisplay:
		if utf8.RuneCountInString(s) > maxDisplayNameLength {
			return httputil.BadJSON("displayname is longer than %d characters", maxDisplayNameLength)
		}
	case profileFieldAvatarURL:
		if len(s) > maxAvatarURLLength {
			return httputil.BadJSON("avatar_url is longer than %d bytes", maxAvatarURLLength)
		}
		if s != "" {
			if _, err := id.ContentURIString(s).Parse(); err != nil {
				return httputil.BadJSON("avatar_url must be an mxc:// URI")
			}
		}
	}
	return nil
}

// deleteProfileField handles DELETE /profile/{userId}/{keyName}.
func (a *API) deleteProfileField(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	key, err := checkOwnProfile(r, dev)
	if err != nil {
		return err
	}
	if dev.IsGuest {
		return httputil.Errorf(http.StatusForbidden, httputil.CodeGuestAccessForbidden, "Guests may not delete profile fields")
	}
	if err := a.store.DeleteProfileField(r.Context(), dev.UserID, key); err != nil {
		return err
	}
	a.notifyProfile(r, dev.UserID, key)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// notifyProfile tells the ProfileListener about displayname/avatar_url changes.
func (a *API) notifyProfile(r *http.Request, userID id.UserID, key string) {
	if a.profiles == nil || (key != profileFieldDisplay && key != profileFieldAvatarURL) {
		return
	}
	p, err := a.store.GetProfile(r.Context(), userID)
	if err != nil {
		return
	}
	var name, avatar string
	_ = json.Unmarshal(p[profileFieldDisplay], &name)
	_ = json.Unmarshal(p[profileFieldAvatarURL], &avatar)
	a.profiles.ProfileChanged(r.Context(), userID, name, avatar)
}
