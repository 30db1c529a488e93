package clientapi

import (
	"net/http"

	"parley/internal/httputil"
)

// specVersions lists every client-server spec version whose required features Parley serves.
var specVersions = []string{
	"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
}

// versions handles GET /_matrix/client/versions.
func (a *API) versions(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"versions": specVersions,
		"unstable_features": map[string]bool{
			// MSC4186 simplified sliding sync (syncapi/slidingsync.go).
			"org.matrix.simplified_msc3575": true,
			"org.matrix.msc3814":            true, // dehydrated devices (keyserver)
		},
	})
}

// wellKnownClient handles GET /.well-known/matrix/client.
func (a *API) wellKnownClient(w http.ResponseWriter, r *http.Request) error {
	base := a.cfg.WellKnown.ClientBaseURL
	if base == "" {
		return httputil.NotFound("no client well-known is configured")
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"m.homeserver": map[string]string{"base_url": base}})
}

// wellKnownServer handles GET /.well-known/matrix/server (well_known.server).
func (a *API) wellKnownServer(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.WellKnown.ServerName == "" {
		return httputil.NotFound("no server well-known is configured")
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"m.server": a.cfg.WellKnown.ServerName})
}
