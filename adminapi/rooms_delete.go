package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/roomserver"
)

// deleteJob is one DELETE /v2/rooms/{roomID} run, polled through the delete_status endpoints.
type deleteJob struct {
	mu       sync.Mutex // guards the fields below
	ID       string
	RoomID   id.RoomID
	Status   string // "shutting_down", "purging", "complete" or "failed"
	Error    string
	Kicked   []id.UserID
	Failed   []id.UserID
	Aliases  []id.RoomAlias
	NewRoom  *id.RoomID
	finished chan struct{}
}

func (j *deleteJob) json() map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	kicked, failed, aliases := []id.UserID{}, []id.UserID{}, []id.RoomAlias{}
	kicked = append(kicked, j.Kicked...)
	failed = append(failed, j.Failed...)
	aliases = append(aliases, j.Aliases...)
	return map[string]any{"delete_id": j.ID, "room_id": j.RoomID, "status": j.Status, "error": j.Error,
		"shutdown_room": map[string]any{"kicked_users": kicked, "failed_to_kick_users": failed, "local_aliases": aliases, "new_room_id": j.NewRoom}}
}

func (j *deleteJob) set(f func()) {
	j.mu.Lock()
	f()
	j.mu.Unlock()
}

// deleteRoom handles DELETE /_synapse/admin/v2/rooms/{roomID}: in the
// background, optionally block the room, make every local member leave, move
// them to a new room with a message, remove local aliases and, unless
// purge is false, remove everything stored about the room (a block stays).
func (a *API) deleteRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, err := a.roomVar(r)
	if err != nil {
		return err
	}
	req := struct {
		NewRoomUserID id.UserID `json:"new_room_user_id"`
		RoomName      string    `json:"room_name"`
		Message       string    `json:"message"`
		Block         bool      `json:"block"`
		Purge         *bool     `json:"purge"`
	}{}
	if r.ContentLength != 0 {
		if err := httputil.DecodeJSONObject(r, &req); err != nil {
			return err
		}
	}
	if req.NewRoomUserID != "" {
		if _, server, err := req.NewRoomUserID.Parse(); err != nil || server != a.cfg.ServerName {
			return httputil.InvalidParam("new_room_user_id must be a local user")
		}
	}
	job := &deleteJob{ID: randomToken("")[:16], RoomID: room.RoomID, Status: "shutting_down", finished: make(chan struct{})}
	a.deleteMu.Lock()
	a.deletes[job.ID] = job
	a.deleteMu.Unlock()
	a.Audit(r.Context(), "room_deletion", dev, string(room.RoomID), map[string]any{"block": req.Block, "purge": req.Purge == nil || *req.Purge, "delete_id": job.ID})
	ctx := context.WithoutCancel(r.Context())
	go func() {
		defer close(job.finished)
		err := a.runDelete(ctx, job, dev.UserID, req.NewRoomUserID, req.RoomName, req.Message, req.Block, req.Purge == nil || *req.Purge)
		job.set(func() {
			if err != nil {
				job.Status, job.Error = "failed", err.Error()
				logging.From(ctx, a.log).Error("room deletion", logging.RoomID(room.RoomID), zap.Error(err))
			} else {
				job.Status = "complete"
			}
		})
	}()
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"delete_id": job.ID})
}

func (a *API) runDelete(ctx context.Context, job *deleteJob, admin, newRoomUser id.UserID, roomName, message string, block, purge bool) error {
	if block {
		if err := a.setBlocked(ctx, job.RoomID, true, admin); err != nil {
			return err
		}
	}
	ms, err := a.store.RoomMemberships(ctx, job.RoomID)
	if err != nil {
		return err
	}
	var kicked []id.UserID
	for _, m := range ms {
		if m.Membership != "join" && m.Membership != "invite" && m.Membership != "knock" {
			continue
		}
		if _, server, _ := m.UserID.Parse(); server != a.cfg.ServerName {
			continue
		}
		if _, err := a.rooms.Leave(ctx, roomserver.MembershipRequest{RoomID: job.RoomID, Sender: m.UserID, Reason: "Room deleted by an administrator"}); err != nil {
			job.set(func() { job.Failed = append(job.Failed, m.UserID) })
			continue
		}
		if m.Membership == "join" {
			kicked = append(kicked, m.UserID)
		}
		job.set(func() { job.Kicked = append(job.Kicked, m.UserID) })
	}
	aliases, err := a.store.RoomAliases(ctx, job.RoomID)
	if err != nil {
		return err
	}
	for _, al := range aliases {
		if err := a.store.DeleteAlias(ctx, al); err == nil {
			job.set(func() { job.Aliases = append(job.Aliases, al) })
		}
	}
	if newRoomUser != "" {
		if roomName == "" {
			roomName = "Content Violation Notification"
		}
		if message == "" {
			message = "Sharing illegal content on this server is not permitted and rooms in violation will be blocked."
		}
		newRoom, _, err := a.rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: newRoomUser, Preset: "public_chat", Name: &roomName})
		if err != nil {
			return err
		}
		job.set(func() { job.NewRoom = &newRoom })
		content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": message})
		if _, err := a.rooms.Send(ctx, roomserver.SendRequest{RoomID: newRoom, Sender: newRoomUser, Type: "m.room.message", Content: content}); err != nil {
			return err
		}
		for _, u := range kicked {
			if u == newRoomUser {
				continue
			}
			_, _ = a.rooms.Join(ctx, roomserver.MembershipRequest{RoomID: newRoom, Sender: u})
		}
	}
	if purge {
		job.set(func() { job.Status = "purging" })
		_, err := a.store.PurgeRoom(ctx, job.RoomID)
		a.rooms.DropRoom(job.RoomID) // whatever the purge removed, the cache must not outlive it
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteStatusByID handles GET /_synapse/admin/v2/rooms/delete_status/{deleteID}.
func (a *API) deleteStatusByID(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	a.deleteMu.Lock()
	job := a.deletes[httputil.PathVar(r, "deleteID")]
	a.deleteMu.Unlock()
	if job == nil {
		return httputil.NotFound("delete id not found")
	}
	return httputil.WriteJSON(w, http.StatusOK, job.json())
}

// deleteStatusByRoom handles GET /_synapse/admin/v2/rooms/{roomID}/delete_status.
func (a *API) deleteStatusByRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room := id.RoomID(httputil.PathVar(r, "roomID"))
	a.deleteMu.Lock()
	var results []map[string]any
	for _, j := range a.deletes {
		if j.RoomID == room {
			results = append(results, j.json())
		}
	}
	a.deleteMu.Unlock()
	if len(results) == 0 {
		return httputil.NotFound("No delete task for room_id '%s' found", room)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"results": results})
}

// blockRoom handles PUT /_synapse/admin/v1/rooms/{roomID}/block {"block": bool}.
func (a *API) blockRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room := id.RoomID(httputil.PathVar(r, "roomID"))
	if len(room) < 2 || room[0] != '!' {
		return httputil.InvalidParam("invalid room ID")
	}
	var req struct {
		Block *bool `json:"block"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.Block == nil {
		return httputil.MissingParam("block is required")
	}
	if err := a.setBlocked(r.Context(), room, *req.Block, dev.UserID); err != nil {
		return err
	}
	a.Audit(r.Context(), "room_block", dev, string(room), map[string]any{"block": *req.Block})
	return httputil.WriteJSON(w, http.StatusOK, map[string]bool{"block": *req.Block})
}

// blockStatus handles GET /_synapse/admin/v1/rooms/{roomID}/block.
func (a *API) blockStatus(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room := id.RoomID(httputil.PathVar(r, "roomID"))
	a.restr.mu.RLock()
	by, ok := a.restr.blocked[room]
	a.restr.mu.RUnlock()
	resp := map[string]any{"block": ok}
	if ok {
		resp["user_id"] = by
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}
