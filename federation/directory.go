package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/roomserver"
)

// The room directory over federation: this server's published rooms and
// space hierarchies for other servers, and the client side asking theirs.

var _ roomserver.RemoteDirectory = (*Remote)(nil)

// registerDirectory attaches publicRooms and hierarchy.
func (a *API) registerDirectory(v1 *mux.Router) {
	v1.Handle("/publicRooms", a.authed("public_rooms", a.getPublicRooms)).Methods(http.MethodGet)
	v1.Handle("/publicRooms", a.authed("public_rooms", a.postPublicRooms)).Methods(http.MethodPost)
	v1.Handle("/hierarchy/{roomID}", a.authed("hierarchy", a.hierarchy)).Methods(http.MethodGet)
}

// boolParam reads an optional boolean query parameter.
func boolParam(q url.Values, name string) (bool, error) {
	switch q.Get(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, httputil.InvalidParam("%s must be true or false", name)
}

// getPublicRooms handles GET /_matrix/federation/v1/publicRooms.
func (a *API) getPublicRooms(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var req roomserver.PublicRoomsQuery
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return httputil.InvalidParam("limit must be a non-negative integer")
		}
		req.Limit = n
	}
	req.Since = q.Get("since")
	all, err := boolParam(q, "include_all_networks")
	if err != nil {
		return err
	}
	if req.IncludeAllNetworks = all; !all {
		req.ThirdPartyInstanceID = q.Get("third_party_instance_id")
	}
	return a.publicRooms(w, r, req)
}

// postPublicRooms handles POST /_matrix/federation/v1/publicRooms.
func (a *API) postPublicRooms(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Limit  *int   `json:"limit"`
		Since  string `json:"since"`
		Filter *struct {
			GenericSearchTerm string     `json:"generic_search_term"`
			RoomTypes         *[]*string `json:"room_types"`
		} `json:"filter"`
		IncludeAllNetworks   bool   `json:"include_all_networks"`
		ThirdPartyInstanceID string `json:"third_party_instance_id"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	req := roomserver.PublicRoomsQuery{Since: body.Since}
	if body.Limit != nil {
		if *body.Limit < 0 {
			return httputil.InvalidParam("limit must be a non-negative integer")
		}
		req.Limit = *body.Limit
	}
	if body.Filter != nil {
		req.SearchTerm, req.RoomTypes = body.Filter.GenericSearchTerm, body.Filter.RoomTypes
	}
	if req.IncludeAllNetworks = body.IncludeAllNetworks; !req.IncludeAllNetworks {
		req.ThirdPartyInstanceID = body.ThirdPartyInstanceID
	}
	return a.publicRooms(w, r, req)
}

func (a *API) publicRooms(w http.ResponseWriter, r *http.Request, req roomserver.PublicRoomsQuery) error {
	page, err := a.d.Rooms.QueryPublicRooms(r.Context(), req)
	if errors.Is(err, roomserver.ErrInvalidParam) {
		return httputil.InvalidParam("%v", err)
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, page.JSON())
}

// hierarchy handles GET /_matrix/federation/v1/hierarchy/{roomID}.
func (a *API) hierarchy(w http.ResponseWriter, r *http.Request) error {
	roomID := id.RoomID(httputil.PathVar(r, "roomID"))
	suggested, err := boolParam(r.URL.Query(), "suggested_only")
	if err != nil {
		return err
	}
	h, err := a.d.Rooms.FederationHierarchy(r.Context(), origin(r), roomID, suggested)
	if err != nil {
		return roomErr(err)
	}
	children := make([]map[string]any, len(h.Children))
	for i, c := range h.Children {
		children[i] = c.JSON()
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"room": h.Room.JSON(), "children": children, "inaccessible_children": h.Inaccessible,
	})
}

// PublicRooms implements clientapi.RemoteRoomDirectory: GET publicRooms for a
// plain listing, POST when a filter is given.
func (r *Remote) PublicRooms(ctx context.Context, server string, q roomserver.PublicRoomsQuery, includeAllNetworks bool) (json.RawMessage, error) {
	params := federation.RequestParams{ServerName: server, Path: federation.URLPath{"v1", "publicRooms"}, Authenticate: true}
	if q.SearchTerm == "" && q.RoomTypes == nil {
		params.Method = http.MethodGet
		params.Query = url.Values{}
		if q.Limit > 0 {
			params.Query.Set("limit", strconv.Itoa(q.Limit))
		}
		if q.Since != "" {
			params.Query.Set("since", q.Since)
		}
		if includeAllNetworks {
			params.Query.Set("include_all_networks", "true")
		}
		if q.ThirdPartyInstanceID != "" {
			params.Query.Set("third_party_instance_id", q.ThirdPartyInstanceID)
		}
	} else {
		body := map[string]any{"filter": map[string]any{}}
		filter := body["filter"].(map[string]any)
		if q.SearchTerm != "" {
			filter["generic_search_term"] = q.SearchTerm
		}
		if q.RoomTypes != nil {
			filter["room_types"] = *q.RoomTypes
		}
		if q.Limit > 0 {
			body["limit"] = q.Limit
		}
		if q.Since != "" {
			body["since"] = q.Since
		}
		if includeAllNetworks {
			body["include_all_networks"] = true
		}
		if q.ThirdPartyInstanceID != "" {
			body["third_party_instance_id"] = q.ThirdPartyInstanceID
		}
		params.Method, params.RequestJSON = http.MethodPost, body
	}
	raw, _, err := r.c.MakeFullRequest(ctx, params)
	if err != nil {
		return nil, remoteQueryErr(err)
	}
	if res := gjson.ParseBytes(raw); !gjson.ValidBytes(raw) || !res.IsObject() || !res.Get("chunk").IsArray() {
		return nil, fmt.Errorf("%w: %s answered publicRooms without a chunk list", roomserver.ErrRemote, server)
	}
	return raw, nil
}

// hierarchyCache keeps other servers' /hierarchy answers for a minute, as
// the spec asks: paginating a space hierarchy walks it again for each page.
// A server that failed to answer is not asked again for half a minute.
var hierarchyCache = struct {
	sync.Mutex
	m    map[hierarchyKey]hierarchyEntry
	down map[downKey]time.Time
}{m: map[hierarchyKey]hierarchyEntry{}, down: map[downKey]time.Time{}}

const (
	hierarchyCacheTTL  = time.Minute
	hierarchyCacheSize = 1000
	hierarchyDownTTL   = 30 * time.Second
)

// The keys name the asking server by its federation client, so that several
// homeservers in one process (tests) do not share answers.
type hierarchyKey struct {
	client    *federation.Client
	server    string
	room      id.RoomID
	suggested bool
}

type downKey struct {
	client *federation.Client
	server string
}

type hierarchyEntry struct {
	h       *roomserver.SpaceHierarchy
	expires time.Time
}

// Hierarchy implements roomserver.RemoteDirectory (federation /hierarchy),
// with answers cached for a minute.
func (r *Remote) Hierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*roomserver.SpaceHierarchy, error) {
	key := hierarchyKey{client: r.c, server: server, room: roomID, suggested: suggestedOnly}
	now := time.Now()
	down := downKey{client: r.c, server: server}
	hierarchyCache.Lock()
	e, ok := hierarchyCache.m[key]
	downUntil := hierarchyCache.down[down]
	hierarchyCache.Unlock()
	if ok && now.Before(e.expires) {
		return e.h, nil
	}
	if now.Before(downUntil) {
		return nil, fmt.Errorf("%w: %s did not answer recently", roomserver.ErrRemote, server)
	}
	h, err := r.fetchHierarchy(ctx, server, roomID, suggestedOnly)
	if err != nil {
		if errors.Is(err, roomserver.ErrRemote) {
			hierarchyCache.Lock()
			if len(hierarchyCache.down) >= hierarchyCacheSize {
				clear(hierarchyCache.down)
			}
			hierarchyCache.down[down] = now.Add(hierarchyDownTTL)
			hierarchyCache.Unlock()
		}
		return nil, err
	}
	hierarchyCache.Lock()
	delete(hierarchyCache.down, down)
	if len(hierarchyCache.m) >= hierarchyCacheSize {
		for k, v := range hierarchyCache.m {
			if now.After(v.expires) {
				delete(hierarchyCache.m, k)
			}
		}
		if len(hierarchyCache.m) >= hierarchyCacheSize {
			clear(hierarchyCache.m)
		}
	}
	hierarchyCache.m[key] = hierarchyEntry{h: h, expires: now.Add(hierarchyCacheTTL)}
	hierarchyCache.Unlock()
	return h, nil
}

func (r *Remote) fetchHierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*roomserver.SpaceHierarchy, error) {
	params := federation.RequestParams{ServerName: server, Method: http.MethodGet,
		Path: federation.URLPath{"v1", "hierarchy", roomID}, Authenticate: true}
	if suggestedOnly {
		params.Query = url.Values{"suggested_only": {"true"}}
	}
	raw, _, err := r.c.MakeFullRequest(ctx, params)
	if err != nil {
		return nil, remoteQueryErr(err)
	}
	res := gjson.ParseBytes(raw)
	room, err := roomserver.ParseHierarchyRoom([]byte(res.Get("room").Raw), suggestedOnly)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", roomserver.ErrRemote, server, err)
	}
	out := &roomserver.SpaceHierarchy{Room: room}
	for _, c := range res.Get("children").Array() {
		if child, err := roomserver.ParseHierarchyRoom([]byte(c.Raw), suggestedOnly); err == nil {
			out.Children = append(out.Children, child)
		}
	}
	for _, c := range res.Get("inaccessible_children").Array() {
		if c.Type == gjson.String {
			out.Inaccessible = append(out.Inaccessible, id.RoomID(c.Str))
		}
	}
	return out, nil
}

// remoteQueryErr keeps a remote 404 a not-found and the remote's verdict on
// a bad request (400) a 400 with its errcode; anything else is a remote failure.
func remoteQueryErr(err error) error {
	var herr mautrix.HTTPError
	if errors.As(err, &herr) && herr.Response != nil && herr.Response.StatusCode == http.StatusBadRequest &&
		herr.RespError != nil && herr.RespError.ErrCode != "" {
		return &httputil.MatrixError{Status: http.StatusBadRequest, Code: herr.RespError.ErrCode, Message: herr.RespError.Err, Err: err}
	}
	if err = queryErr(err); errors.Is(err, roomserver.ErrRemoteNotFound) {
		return err
	}
	return remoteErr(err)
}
