package adminapi

import (
	"net/http"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// overrideRateLimit handles GET, POST and DELETE
// /_synapse/admin/v1/users/{userID}/override_ratelimit: a user's own message
// rate (0 and 0: not rate limited).
func (a *API) overrideRateLimit(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.existingLocalUser(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		all, err := a.store.RateLimitOverrides(ctx)
		if err != nil {
			return err
		}
		o, ok := all[user]
		if !ok {
			return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
		}
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"messages_per_second": o.MessagesPerSecond, "burst_count": o.BurstCount})
	case http.MethodDelete:
		if err := a.setOverride(ctx, user, nil); err != nil {
			return err
		}
		a.Audit(ctx, "ratelimit_override", dev, string(user), map[string]any{"removed": true})
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
	}
	var req struct {
		MessagesPerSecond *float64 `json:"messages_per_second"`
		BurstCount        *int     `json:"burst_count"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	var o storage.RateLimitOverride
	if req.MessagesPerSecond != nil {
		o.MessagesPerSecond = *req.MessagesPerSecond
	}
	if req.BurstCount != nil {
		o.BurstCount = *req.BurstCount
	}
	if o.MessagesPerSecond < 0 || o.BurstCount < 0 {
		return httputil.InvalidParam("messages_per_second and burst_count must not be negative")
	}
	if err := a.setOverride(ctx, user, &o); err != nil {
		return err
	}
	a.Audit(ctx, "ratelimit_override", dev, string(user), map[string]any{"messages_per_second": o.MessagesPerSecond, "burst_count": o.BurstCount})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"messages_per_second": o.MessagesPerSecond, "burst_count": o.BurstCount})
}
