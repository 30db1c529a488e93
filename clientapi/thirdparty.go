package clientapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"parley/internal/asapi"
	"parley/internal/authn"
	"parley/internal/httputil"
)

// protocolCacheTTL is how long a service's protocol metadata is reused; it
// changes only when the service is reconfigured.
const protocolCacheTTL = 5 * time.Minute

// protocolCache holds the application services' answers to
// GET /_matrix/app/v1/thirdparty/protocol/{protocol}.
type protocolCache struct {
	mu      sync.Mutex // guards entries
	entries map[[2]string]protocolEntry
}

type protocolEntry struct {
	info    map[string]any
	expires time.Time
}

// protocol returns as's metadata of protocol, from the cache or asked anew;
// nil when the service does not answer with a protocol object.
func (a *API) protocol(ctx context.Context, as *asapi.Service, protocol string) map[string]any {
	key := [2]string{as.ID, protocol}
	c := &a.protocols
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.info
	}
	raw, err := a.asClient.ThirdParty(ctx, as, "protocol", protocol, nil)
	var info map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &info)
	}
	if err != nil || info == nil {
		a.log.Debug("application service protocol lookup failed", zap.String("appservice", as.ID), zap.String("protocol", protocol), zap.Error(err))
		return nil
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[[2]string]protocolEntry{}
	}
	c.entries[key] = protocolEntry{info: info, expires: time.Now().Add(protocolCacheTTL)}
	c.mu.Unlock()
	return info
}

// mergedProtocol combines what every service providing protocol says about
// it: the first answer, with the instances of all of them. Each instance
// with a network_id gets the instance_id that third_party_instance_id in
// /publicRooms names ("<service id>|<network id>"). Nil when none answered.
func (a *API) mergedProtocol(ctx context.Context, protocol string) map[string]any {
	var out map[string]any
	instances := []any{}
	for _, as := range a.apps.ProtocolServices(protocol) {
		info := a.protocol(ctx, as, protocol)
		if info == nil {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(info))
			for k, v := range info {
				out[k] = v
			}
		}
		list, _ := info["instances"].([]any)
		for _, inst := range list {
			m, ok := inst.(map[string]any)
			if !ok {
				continue
			}
			cp := make(map[string]any, len(m)+1)
			for k, v := range m {
				cp[k] = v
			}
			if network, ok := m["network_id"].(string); ok && network != "" {
				cp["instance_id"] = as.ID + "|" + network
			}
			instances = append(instances, cp)
		}
	}
	if out != nil {
		out["instances"] = instances
	}
	return out
}

// thirdPartyProtocols handles GET /thirdparty/protocols.
func (a *API) thirdPartyProtocols(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	out := map[string]any{}
	for _, p := range a.apps.Protocols() {
		if info := a.mergedProtocol(r.Context(), p); info != nil {
			out[p] = info
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, out)
}

// thirdPartyProtocol handles GET /thirdparty/protocol/{protocol}.
func (a *API) thirdPartyProtocol(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	p := httputil.PathVar(r, "protocol")
	info := a.mergedProtocol(r.Context(), p)
	if info == nil {
		return httputil.NotFound("Unknown protocol %q", p)
	}
	return httputil.WriteJSON(w, http.StatusOK, info)
}

// thirdPartyLookup handles GET /thirdparty/{location,user}[/{protocol}]: the
// query goes to every service providing the protocol (or, without one, every
// service providing any) and their answers are concatenated. An unknown
// protocol is 404; a service that fails is left out.
func (a *API) thirdPartyLookup(kind string) authn.Handler {
	return func(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
		protocol := httputil.PathVar(r, "protocol")
		var services []*asapi.Service
		if protocol == "" {
			services = a.apps.ProtocolProviders()
		} else if services = a.apps.ProtocolServices(protocol); len(services) == 0 {
			return httputil.NotFound("Unknown protocol %q", protocol)
		}
		q := url.Values{}
		for k, v := range r.URL.Query() {
			if k != "access_token" {
				q[k] = v
			}
		}
		if protocol == "" && kind == "location" && q.Get("alias") == "" {
			return httputil.MissingParam("alias is required")
		}
		if protocol == "" && kind == "user" && q.Get("userid") == "" {
			return httputil.MissingParam("userid is required")
		}
		out := []json.RawMessage{}
		for _, as := range services {
			raw, err := a.asClient.ThirdParty(r.Context(), as, kind, protocol, q)
			var list []json.RawMessage
			if err == nil {
				err = json.Unmarshal(raw, &list)
			}
			if err != nil {
				a.log.Debug("application service third-party lookup failed", zap.String("appservice", as.ID), zap.String("kind", kind), zap.Error(err))
				continue
			}
			for _, item := range list {
				if len(item) > 0 && item[0] == '{' {
					out = append(out, item)
				}
			}
		}
		return httputil.WriteJSON(w, http.StatusOK, out)
	}
}
