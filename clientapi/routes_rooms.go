package clientapi

import "github.com/gorilla/mux"

// registerRoomRoutes attaches room creation, sending, state, membership and history.
func (a *API) registerRoomRoutes(v3 *mux.Router) {
}
