package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
)

type createRoomRequest struct {
	Visibility                string                         `json:"visibility"`
	RoomAliasName             string                         `json:"room_alias_name"`
	Name                      *string                        `json:"name"`
	Topic                     *string                        `json:"topic"`
	Invite                    []id.UserID                    `json:"invite"`
	Invite3PID                []json.RawMessage              `json:"invite_3pid"`
	CreationContent           map[string]json.RawMessage     `json:"creation_content"`
	InitialState              []roomserver.InitialStateEvent `json:"initial_state"`
	Preset                    string                         `json:"preset"`
	IsDirect                  bool                           `json:"is_direct"`
	RoomVersion               id.RoomVersion                 `json:"room_version"`
	PowerLevelContentOverride map[string]json.RawMessage     `json:"power_level_content_override"`
}

// createRoom handles POST /createRoom.
func (a *API) createRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req createRoomRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	for _, is := range req.InitialState {
		if len(is.Content) == 0 || is.Content[0] != '{' {
			return httputil.BadJSON("initial_state content must be an object")
		}
	}
	if req.RoomAliasName != "" {
		if err := a.checkNotReservedAlias(id.NewRoomAlias(req.RoomAliasName, a.cfg.ServerName), dev); err != nil {
			return err
		}
	}
	for _, u := range req.Invite {
		a.EnsureAppServiceUser(r.Context(), u)
	}
	create := roomserver.CreateRoomRequest{
		Creator: dev.UserID, Visibility: req.Visibility, RoomAliasName: req.RoomAliasName, Name: req.Name, Topic: req.Topic,
		Invite: req.Invite, CreationContent: req.CreationContent, InitialState: req.InitialState, Preset: req.Preset,
		IsDirect: req.IsDirect, RoomVersion: req.RoomVersion, PowerLevelContentOverride: req.PowerLevelContentOverride,
	}
	if len(req.Invite3PID) > 0 {
		if err := a.createRoom3PID(r.Context(), dev.UserID, req.Invite3PID, &create); err != nil {
			return err
		}
	}
	roomID, alias, err := a.rooms.CreateRoom(r.Context(), create)
	if err != nil {
		return roomError(err)
	}
	resp := map[string]any{"room_id": roomID}
	if alias != "" {
		resp["room_alias"] = alias
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}
