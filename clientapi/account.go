package clientapi

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/roomserver"
	"parley/storage"
)

// changePassword handles POST /account/password (UIA: m.login.password).
func (a *API) changePassword(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		NewPassword   *string   `json:"new_password"`
		LogoutDevices *bool     `json:"logout_devices"`
		Auth          *authDict `json:"auth"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.NewPassword != nil {
		if err := a.checkPassword(*req.NewPassword); err != nil {
			return err
		}
	}
	sess, err := a.checkUIA(r.Context(), req.Auth, uiaSpec{op: "change_password", user: dev.UserID, flows: sensitiveFlows})
	if err != nil {
		return err
	}
	if req.NewPassword == nil {
		return httputil.MissingParam("new_password is required")
	}
	hash, err := a.hashPassword(*req.NewPassword)
	if err != nil {
		return err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := a.store.SetPassword(r.Context(), dev.UserID, hash, logout, dev.DeviceID); err != nil {
		return err
	}
	_ = a.store.DeleteUIASession(r.Context(), sess.ID)
	a.audit(r.Context(), "password_change", dev.UserID, dev.DeviceID, authn.ClientIP(r.Context()), map[string]any{"logout_devices": logout})
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// deactivate handles POST /account/deactivate (UIA: m.login.password). Every
// device and token is revoked in the same transaction that marks the account.
func (a *API) deactivate(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		Auth     *authDict `json:"auth"`
		IDServer string    `json:"id_server"`
		Erase    bool      `json:"erase"`
	}
	if err := decodeOptionalObject(r, &req); err != nil {
		return err
	}
	// Application services deactivate their users without user-interactive
	// auth (they have no password), as in Synapse.
	if dev.AppService == "" {
		if _, err := a.checkUIA(r.Context(), req.Auth, uiaSpec{op: "deactivate", user: dev.UserID, flows: sensitiveFlows}); err != nil {
			return err
		}
	}
	// The session is deleted with the user's other UIA sessions by DeactivateAccount.
	if err := a.store.DeactivateAccount(r.Context(), dev.UserID, req.Erase); err != nil {
		return err
	}
	log := logging.From(r.Context(), a.log)
	log.Info("account deactivated", logging.UserID(dev.UserID), zap.Bool("erase", req.Erase))
	a.audit(r.Context(), "deactivation", dev.UserID, dev.DeviceID, authn.ClientIP(r.Context()), map[string]any{"erase": req.Erase})
	a.partAllRooms(r.Context(), dev.UserID)
	// No third-party identifiers are bound, so unbinding them all trivially succeeded.
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"id_server_unbind_result": "success"})
}

// partAllRooms makes a deactivated user leave every room they are joined to
// and reject their invites and knocks, as Synapse does. The account is
// already deactivated, so failures are logged, not returned.
func (a *API) partAllRooms(ctx context.Context, userID id.UserID) {
	if a.rooms == nil {
		return
	}
	log := logging.From(ctx, a.log)
	ms, err := a.store.UserMemberships(ctx, userID)
	if err != nil {
		log.Error("list memberships of deactivated user", logging.UserID(userID), zap.Error(err))
		return
	}
	for _, m := range ms {
		switch m.Membership {
		case "join", "invite", "knock":
		default:
			continue
		}
		if _, err := a.rooms.Leave(ctx, roomserver.MembershipRequest{RoomID: m.RoomID, Sender: userID, Reason: "Account deactivated"}); err != nil {
			log.Warn("deactivated user could not leave room", logging.UserID(userID), logging.RoomID(m.RoomID), zap.Error(err))
		}
	}
}

// threePIDs handles GET /account/3pid: Parley binds no third-party identifiers.
func (a *API) threePIDs(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"threepids": []any{}})
}

// deviceJSON is a device as GET /devices shows it.
type deviceJSON struct {
	DeviceID    id.DeviceID `json:"device_id"`
	DisplayName *string     `json:"display_name,omitempty"`
	LastSeenIP  *string     `json:"last_seen_ip,omitempty"`
	LastSeenTS  *int64      `json:"last_seen_ts,omitempty"`
}

func toDeviceJSON(d storage.Device) deviceJSON {
	out := deviceJSON{DeviceID: d.DeviceID}
	if d.DisplayName != "" {
		out.DisplayName = &d.DisplayName
	}
	if d.LastSeenIP != "" {
		out.LastSeenIP = &d.LastSeenIP
	}
	if d.LastSeenTS != 0 {
		out.LastSeenTS = &d.LastSeenTS
	}
	return out
}

// listDevices handles GET /devices.
func (a *API) listDevices(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	devs, err := a.store.ListDevices(r.Context(), dev.UserID)
	if err != nil {
		return err
	}
	out := make([]deviceJSON, len(devs))
	for i, d := range devs {
		out[i] = toDeviceJSON(d)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"devices": out})
}

// getDevice handles GET /devices/{deviceId}.
func (a *API) getDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	d, err := a.store.GetDevice(r.Context(), dev.UserID, id.DeviceID(httputil.PathVar(r, "deviceId")))
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Unknown device")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, toDeviceJSON(*d))
}

// maxDeviceNameLength bounds device display names.
const maxDeviceNameLength = 100

// updateDevice handles PUT /devices/{deviceId}.
func (a *API) updateDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	deviceID := id.DeviceID(httputil.PathVar(r, "deviceId"))
	if req.DisplayName == nil {
		// Nothing to change, but the device must exist.
		if _, err := a.store.GetDevice(r.Context(), dev.UserID, deviceID); errors.Is(err, storage.ErrNotFound) {
			return httputil.NotFound("Unknown device")
		} else if err != nil {
			return err
		}
		return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
	}
	if len(*req.DisplayName) > maxDeviceNameLength {
		return httputil.InvalidParam("display_name is longer than %d bytes", maxDeviceNameLength)
	}
	err := a.store.SetDeviceDisplayName(r.Context(), dev.UserID, deviceID, *req.DisplayName)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Unknown device")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// deleteDevice handles DELETE /devices/{deviceId} (UIA: m.login.password).
// As in Synapse, deleting a device that does not exist succeeds once the
// user has authenticated (the spec lists no 404 here).
func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		Auth *authDict `json:"auth"`
	}
	if err := decodeOptionalObject(r, &req); err != nil {
		return err
	}
	deviceID := id.DeviceID(httputil.PathVar(r, "deviceId"))
	sess, err := a.checkUIA(r.Context(), req.Auth, uiaSpec{op: "delete_device:" + string(deviceID), user: dev.UserID, flows: sensitiveFlows})
	if err != nil {
		return err
	}
	if err := a.store.DeleteDevice(r.Context(), dev.UserID, deviceID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	_ = a.store.DeleteUIASession(r.Context(), sess.ID)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// deleteDevices handles POST /delete_devices (UIA: m.login.password).
func (a *API) deleteDevices(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		Devices *[]id.DeviceID `json:"devices"`
		Auth    *authDict      `json:"auth"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return httputil.MissingParam("devices is required")
	}
	sess, err := a.checkUIA(r.Context(), req.Auth, uiaSpec{op: "delete_devices", user: dev.UserID, flows: sensitiveFlows})
	if err != nil {
		return err
	}
	if err := a.store.DeleteDevices(r.Context(), dev.UserID, *req.Devices); err != nil {
		return err
	}
	_ = a.store.DeleteUIASession(r.Context(), sess.ID)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}
