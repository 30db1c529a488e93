package clientapi

import (
	"errors"
	"net/http"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// aliasVar reads and checks the {roomAlias} path variable.
func (a *API) aliasVar(r *http.Request) (id.RoomAlias, string, error) {
	alias := httputil.PathVar(r, "roomAlias")
	sigil, local, server := id.ParseCommonIdentifier(alias)
	if sigil != '#' || local == "" || server == "" {
		return "", "", httputil.InvalidParam("invalid room alias %q", alias)
	}
	return id.RoomAlias(alias), server, nil
}

// getAlias handles GET /directory/room/{roomAlias}.
func (a *API) getAlias(w http.ResponseWriter, r *http.Request) error {
	alias, server, err := a.aliasVar(r)
	if err != nil {
		return err
	}
	if server != a.cfg.ServerName && a.remote != nil {
		roomID, servers, err := a.remote.QueryDirectory(r.Context(), alias)
		if errors.Is(err, ErrRemoteNotFound) {
			return httputil.NotFound("Room alias %s not found", alias)
		} else if err != nil {
			return httputil.Errorf(http.StatusBadGateway, "M_UNKNOWN", "could not ask %s: %v", server, err)
		}
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": servers})
	}
	roomID, _, err := a.store.ResolveAlias(r.Context(), alias)
	if errors.Is(err, storage.ErrNotFound) {
		var ok bool
		if roomID, ok = a.ResolveAppServiceAlias(r.Context(), alias); !ok {
			return httputil.NotFound("Room alias %s not found", alias)
		}
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": []string{a.cfg.ServerName}})
}

// putAlias handles PUT /directory/room/{roomAlias}.
func (a *API) putAlias(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	alias, server, err := a.aliasVar(r)
	if err != nil {
		return err
	}
	if server != a.cfg.ServerName {
		return httputil.InvalidParam("alias must be on this server")
	}
	if a.cfg.Moderation.AliasDenied(string(alias)) {
		return httputil.Forbidden("The alias %s is not allowed on this server", alias)
	}
	if err := a.checkNotReservedAlias(alias, dev); err != nil {
		return err
	}
	var body struct {
		RoomID id.RoomID `json:"room_id"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	if len(body.RoomID) < 2 || body.RoomID[0] != '!' {
		return httputil.InvalidParam("invalid room_id")
	}
	if _, err := a.store.GetRoom(r.Context(), body.RoomID); errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Unknown room")
	} else if err != nil {
		return err
	}
	err = a.store.CreateAlias(r.Context(), alias, body.RoomID, dev.UserID)
	if errors.Is(err, storage.ErrConflict) {
		return httputil.Errorf(http.StatusConflict, httputil.CodeUnknown, "Room alias %s already exists", alias)
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// deleteAlias handles DELETE /directory/room/{roomAlias}: the alias's creator,
// a server admin or a member who may change the room's canonical alias may delete it.
func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	alias, _, err := a.aliasVar(r)
	if err != nil {
		return err
	}
	err = a.rooms.DeleteAlias(r.Context(), dev.UserID, dev.IsAdmin, alias)
	if errors.Is(err, roomserver.ErrAliasNotFound) {
		return httputil.NotFound("Room alias %s not found", alias)
	} else if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// roomAliases handles GET /rooms/{roomID}/aliases (members only).
func (a *API) roomAliases(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	if _, err := a.rooms.RoomState(r.Context(), dev.UserID, roomID); err != nil {
		return roomError(err)
	}
	aliases, err := a.store.RoomAliases(r.Context(), roomID)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"aliases": aliases})
}
