package adminapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// listAudit handles GET /_parley/admin/v1/audit?user=&action=&from=&to=&since=&limit=:
// audit entries oldest first; from and to are timestamps in ms (inclusive),
// since pages by entry ID (the next_token of the previous page).
func (a *API) listAudit(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	q := r.URL.Query()
	f := storage.AuditFilter{UserID: id.UserID(q.Get("user")), Action: q.Get("action"), Limit: 100}
	for name, dst := range map[string]*int64{"from": &f.From, "to": &f.To, "since": &f.After} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return httputil.InvalidParam("%s must be a non-negative integer", name)
			}
			*dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return httputil.InvalidParam("limit must be a non-negative integer")
		}
		f.Limit = min(n, 1000)
	}
	entries, err := a.store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(entries))
	for i, e := range entries {
		out[i] = map[string]any{"id": e.ID, "ts": e.TS, "action": e.Action, "user_id": e.UserID, "target": e.Target,
			"device_id": e.DeviceID, "ip": e.IP, "details": rawJSON(e.Details)}
	}
	resp := map[string]any{"entries": out}
	if len(entries) == f.Limit && f.Limit > 0 {
		resp["next_token"] = strconv.FormatInt(entries[len(entries)-1].ID, 10)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}
