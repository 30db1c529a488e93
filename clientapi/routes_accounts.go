package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// registerAccountRoutes attaches registration, login, devices, profile, account data and filters.
func (a *API) registerAccountRoutes(v3 *mux.Router) {
	a.handle(v3, "/register", "register", a.register, http.MethodPost)
	a.handle(v3, "/register/available", "register_available", a.registerAvailable, http.MethodGet)
	a.handle(v3, "/login", "login_flows", a.loginFlows, http.MethodGet)
	a.handle(v3, "/login", "login", a.login, http.MethodPost)
	a.authed(v3, "/logout", "logout", a.logout, http.MethodPost)
	a.authed(v3, "/account/whoami", "whoami", a.whoami, http.MethodGet)
}
