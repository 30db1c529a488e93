package adminapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

type reportRequest struct {
	Reason *string `json:"reason"`
	Score  *int64  `json:"score"`
}

func decodeReport(r *http.Request) (*reportRequest, error) {
	var req reportRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return nil, err
	}
	if req.Score != nil && (*req.Score < -100 || *req.Score > 0) {
		return nil, httputil.InvalidParam("score must be between -100 and 0")
	}
	return &req, nil
}

// reportEvent handles POST /rooms/{roomID}/report/{eventID}. As the spec
// asks, an event the reporter cannot see answers 404 like an unknown one.
func (a *API) reportEvent(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	req, err := decodeReport(r)
	if err != nil {
		return err
	}
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	eventID := id.EventID(httputil.PathVar(r, "eventID"))
	if _, err := a.rooms.Event(r.Context(), dev.UserID, roomID, eventID); err != nil {
		return httputil.NotFound("Unable to report event: it does not exist or you aren't able to see it.")
	}
	return a.storeReport(w, r, dev, storage.Report{Kind: "event", RoomID: roomID, EventID: eventID, Reason: req.Reason, Score: req.Score})
}

// reportRoom handles POST /rooms/{roomID}/report.
func (a *API) reportRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	req, err := decodeReport(r)
	if err != nil {
		return err
	}
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	if _, err := a.store.GetRoom(r.Context(), roomID); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return httputil.NotFound("Room does not exist")
		}
		return err
	}
	return a.storeReport(w, r, dev, storage.Report{Kind: "room", RoomID: roomID, Reason: req.Reason})
}

// reportUser handles POST /users/{userID}/report.
func (a *API) reportUser(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	req, err := decodeReport(r)
	if err != nil {
		return err
	}
	user := id.UserID(httputil.PathVar(r, "userID"))
	if _, server, err := user.Parse(); err != nil {
		return httputil.InvalidParam("invalid user ID")
	} else if server == a.cfg.ServerName {
		if _, err := a.store.GetAccount(r.Context(), user); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return httputil.NotFound("User does not exist")
			}
			return err
		}
	}
	return a.storeReport(w, r, dev, storage.Report{Kind: "user", TargetUserID: user, Reason: req.Reason})
}

func (a *API) storeReport(w http.ResponseWriter, r *http.Request, dev *authn.Device, rep storage.Report) error {
	rep.UserID = dev.UserID
	rep.ReceivedTS = time.Now().UnixMilli()
	reportID, err := a.store.CreateReport(r.Context(), rep)
	if err != nil {
		return err
	}
	a.Audit(r.Context(), "report", dev, string(rep.EventID)+string(rep.RoomID)+string(rep.TargetUserID), map[string]any{"kind": rep.Kind, "report_id": reportID})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

func (a *API) reportJSON(r *http.Request, rep *storage.Report, withEvent bool) (map[string]any, error) {
	out := map[string]any{"id": rep.ID, "received_ts": rep.ReceivedTS, "room_id": rep.RoomID, "event_id": rep.EventID,
		"user_id": rep.UserID, "reason": rep.Reason, "score": rep.Score, "kind": rep.Kind, "name": nil, "canonical_alias": nil, "sender": nil}
	if rep.TargetUserID != "" {
		out["target_user_id"] = rep.TargetUserID
	}
	if rep.RoomID != "" {
		if room, err := a.store.GetRoom(r.Context(), rep.RoomID); err == nil {
			if info, err := a.roomInfo(r.Context(), *room); err == nil {
				out["name"], out["canonical_alias"] = info.Name, info.CanonicalAlias
			}
		}
	}
	if rep.EventID != "" {
		if ev, err := a.store.GetEvent(r.Context(), rep.EventID); err == nil {
			out["sender"] = ev.Sender
			if withEvent {
				out["event_json"] = rawJSON(ev.JSON)
			}
		}
	}
	return out, nil
}

// listReports handles GET /_synapse/admin/v1/event_reports.
func (a *API) listReports(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	from, err := intParam(r, "from", 0)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	oldest := false
	switch q.Get("dir") {
	case "", "b":
	case "f":
		oldest = true
	default:
		return httputil.InvalidParam("dir must be f or b")
	}
	reps, total, err := a.store.ListReports(r.Context(), from, limit, oldest, id.RoomID(q.Get("room_id")), id.UserID(q.Get("user_id")))
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for i := range reps {
		j, err := a.reportJSON(r, &reps[i], false)
		if err != nil {
			return err
		}
		out = append(out, j)
	}
	resp := map[string]any{"event_reports": out, "total": total}
	if from+len(reps) < total {
		resp["next_token"] = from + len(reps)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

func reportIDVar(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(httputil.PathVar(r, "reportID"), 10, 64)
	if err != nil || n < 0 {
		return 0, httputil.InvalidParam("The report_id parameter must be a string representing a positive integer.")
	}
	return n, nil
}

// getReport handles GET /_synapse/admin/v1/event_reports/{reportID}.
func (a *API) getReport(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	n, err := reportIDVar(r)
	if err != nil {
		return err
	}
	rep, err := a.store.GetReport(r.Context(), n)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Event report not found")
	} else if err != nil {
		return err
	}
	j, err := a.reportJSON(r, rep, true)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, j)
}

// deleteReport handles DELETE /_synapse/admin/v1/event_reports/{reportID}.
func (a *API) deleteReport(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	n, err := reportIDVar(r)
	if err != nil {
		return err
	}
	if err := a.store.DeleteReport(r.Context(), n); errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Event report not found")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}
