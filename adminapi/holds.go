package adminapi

import (
	"errors"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// holdVars parses /holds/{kind}/{target}.
func holdVars(r *http.Request) (string, string, error) {
	kind, target := httputil.PathVar(r, "kind"), httputil.PathVar(r, "target")
	switch kind {
	case "room":
		if !(len(target) > 1 && target[0] == '!') {
			return "", "", httputil.InvalidParam("invalid room ID")
		}
	case "user":
		if _, _, err := id.UserID(target).Parse(); err != nil {
			return "", "", httputil.InvalidParam("invalid user ID")
		}
	default:
		return "", "", httputil.InvalidParam("kind must be room or user")
	}
	return kind, target, nil
}

// putHold handles PUT /_parley/admin/v1/holds/{kind}/{target}: while a room
// or user is held, redacted content of its events is kept for export.
func (a *API) putHold(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	kind, target, err := holdVars(r)
	if err != nil {
		return err
	}
	if err := a.store.PutHold(r.Context(), storage.Hold{Kind: kind, Target: target, CreatedTS: time.Now().UnixMilli(), CreatedBy: dev.UserID}); err != nil {
		return err
	}
	a.Audit(r.Context(), "hold_placed", dev, target, map[string]any{"kind": kind})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// deleteHold handles DELETE /_parley/admin/v1/holds/{kind}/{target}.
func (a *API) deleteHold(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	kind, target, err := holdVars(r)
	if err != nil {
		return err
	}
	if err := a.store.DeleteHold(r.Context(), kind, target); errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No such hold")
	} else if err != nil {
		return err
	}
	a.Audit(r.Context(), "hold_lifted", dev, target, map[string]any{"kind": kind})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// listHolds handles GET /_parley/admin/v1/holds.
func (a *API) listHolds(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	hs, err := a.store.ListHolds(r.Context())
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(hs))
	for i, h := range hs {
		out[i] = map[string]any{"kind": h.Kind, "target": h.Target, "created_ts": h.CreatedTS, "created_by": h.CreatedBy}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"holds": out})
}
