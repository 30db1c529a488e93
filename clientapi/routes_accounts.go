package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// registerAccountRoutes attaches registration, login, logout, account
// management, devices, profile and capabilities.
func (a *API) registerAccountRoutes(v3, v1 *mux.Router) {
	a.handle(v3, "/register", "register", a.register, http.MethodPost)
	a.handle(v3, "/register/available", "register_available", a.registerAvailable, http.MethodGet)
	a.handle(v1, "/register/m.login.registration_token/validity", "registration_token_validity", a.registrationTokenValidity, http.MethodGet)
	a.handle(v3, "/login", "login_flows", a.loginFlows, http.MethodGet)
	a.handle(v3, "/login", "login", a.login, http.MethodPost)
	a.authedNoGuest(v1, "/login/get_token", "get_login_token", a.getLoginToken, http.MethodPost)
	a.handle(v3, "/refresh", "refresh", a.refresh, http.MethodPost)
	a.authed(v3, "/logout", "logout", a.logout, http.MethodPost)
	a.authed(v3, "/logout/all", "logout_all", a.logoutAll, http.MethodPost)

	a.authed(v3, "/account/whoami", "whoami", a.whoami, http.MethodGet)
	a.authedNoGuest(v3, "/account/password", "change_password", a.changePassword, http.MethodPost)
	a.authedNoGuest(v3, "/account/deactivate", "deactivate", a.deactivate, http.MethodPost)
	a.authed(v3, "/account/3pid", "threepids", a.threePIDs, http.MethodGet)
	a.authed(v3, "/capabilities", "capabilities", a.capabilities, http.MethodGet)
	a.authed(v3, "/user/{userId}/openid/request_token", "openid_request_token", a.requestOpenIDToken, http.MethodPost)

	a.authed(v3, "/devices", "list_devices", a.listDevices, http.MethodGet)
	a.authed(v3, "/devices/{deviceId}", "get_device", a.getDevice, http.MethodGet)
	a.authed(v3, "/devices/{deviceId}", "update_device", a.updateDevice, http.MethodPut)
	a.authedNoGuest(v3, "/devices/{deviceId}", "delete_device", a.deleteDevice, http.MethodDelete)
	a.authedNoGuest(v3, "/delete_devices", "delete_devices", a.deleteDevices, http.MethodPost)

	a.handle(v3, "/profile/{userId}", "get_profile", a.getProfile, http.MethodGet)
	a.handle(v3, "/profile/{userId}/{keyName}", "get_profile_field", a.getProfileField, http.MethodGet)
	a.authed(v3, "/profile/{userId}/{keyName}", "set_profile_field", a.setProfileField, http.MethodPut)
	a.authed(v3, "/profile/{userId}/{keyName}", "delete_profile_field", a.deleteProfileField, http.MethodDelete)
}
