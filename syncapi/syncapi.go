// Package syncapi serves GET /sync: it tells each client what happened since
// its last token. Each kind of data is a Stream with its own position; a
// long-polling request waits on the Notifier until a stream has something for
// its user, then every stream fills its part of the response.
package syncapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Request is one /sync request as the streams see it.
type Request struct {
	Device *authn.Device
	// Since is the client's token; nil for an initial sync.
	Since Token
	// FullState asks for the whole state of each room, as on an initial sync.
	FullState bool
	// Filter is the effective filter (defaults applied).
	Filter *mautrix.Filter
	// SetPresence is the set_presence parameter ("online" if absent).
	SetPresence string
	// upto holds the positions the response is built up to (set by build).
	upto Token
}

// Initial reports whether this is an initial sync (no since token).
func (r *Request) Initial() bool { return r.Since == nil }

// Stream is one kind of sync data.
type Stream interface {
	// Name is the stream's key in tokens.
	Name() StreamName
	// Position is the stream's current (latest) position.
	Position(ctx context.Context) (int64, error)
	// Fill adds to resp what happened for req's user between from (exclusive;
	// 0 with an initial sync) and to (inclusive). It reports whether it added
	// anything that should end a long-poll.
	Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error)
}

// Finisher is implemented by streams that decorate the finished response
// (for example unread counts of every joined room in it). Finish runs after
// every stream's Fill, on every response, whether or not its position moved.
type Finisher interface {
	Finish(ctx context.Context, req *Request, resp *Response) error
}

// SyncObserver is told when a /sync request starts and ends, for presence
// (set_presence and idle tracking).
type SyncObserver interface {
	SyncStarted(dev *authn.Device, setPresence string)
	SyncEnded(dev *authn.Device)
}

// FilterLoader returns a stored filter by ID for a user.
type FilterLoader interface {
	LoadFilter(ctx context.Context, user id.UserID, filterID string) (*mautrix.Filter, error)
}

// Deps is what the sync API needs.
type Deps struct {
	Auth     authn.Authenticator
	Notifier *Notifier
	Streams  []Stream
	// Positions, if set, reads the positions of every stream that
	// implements SnapshotStream in one query per /sync pass.
	Positions storage.PositionStore
	Filters   FilterLoader
	// Observer, if set, is told about every /sync request.
	Observer SyncObserver
	Log      *zap.Logger
}

// Server is the sync API.
type Server struct {
	auth      authn.Authenticator
	notifier  *Notifier
	streams   []Stream
	positions storage.PositionStore
	filters   FilterLoader
	observer  SyncObserver
	log       *zap.Logger
}

// SnapshotStream is a Stream whose position is one of storage.Positions.
type SnapshotStream interface {
	PositionIn(p storage.Positions) int64
}

// New builds the sync API.
func New(d Deps) *Server {
	return &Server{auth: d.Auth, notifier: d.Notifier, streams: d.Streams, positions: d.Positions, filters: d.Filters, observer: d.Observer, log: d.Log}
}

// Notifier returns the notifier that streams and writers wake.
func (s *Server) Notifier() *Notifier { return s.notifier }

// Register attaches /sync.
func (s *Server) Register(root *mux.Router) {
	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()
	v3.Handle("/sync", httputil.Wrap(s.log, "sync", authn.Required(s.auth, s.sync))).Methods(http.MethodGet)
	v3.Handle("/events", httputil.Wrap(s.log, "events", authn.Required(s.auth, s.events))).Methods(http.MethodGet)
}

// maxTimeout bounds a long-poll.
const maxTimeout = 5 * time.Minute

// longPollTimeout reads the timeout query parameter (milliseconds; none: 0),
// capped at maxTimeout.
func longPollTimeout(q url.Values) (time.Duration, error) {
	v := q.Get("timeout")
	if v == "" {
		return 0, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, httputil.InvalidParam("timeout must be a non-negative integer")
	}
	return min(time.Duration(ms)*time.Millisecond, maxTimeout), nil
}

// sync handles GET /sync.
func (s *Server) sync(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	ctx := r.Context()
	q := r.URL.Query()
	req := &Request{Device: dev, SetPresence: q.Get("set_presence")}
	if req.SetPresence == "" {
		req.SetPresence = "online"
	}
	switch req.SetPresence {
	case "online", "offline", "unavailable":
	default:
		return httputil.InvalidParam("set_presence must be online, offline or unavailable")
	}
	if v := q.Get("since"); v != "" {
		t, err := ParseToken(v)
		if err != nil {
			return httputil.InvalidParam("%v", err)
		}
		req.Since = t
	}
	switch q.Get("full_state") {
	case "", "false":
	case "true":
		req.FullState = true
	default:
		return httputil.InvalidParam("full_state must be true or false")
	}
	timeout, err := longPollTimeout(q)
	if err != nil {
		return err
	}
	filter, err := s.loadFilter(ctx, dev.UserID, q.Get("filter"))
	if err != nil {
		return err
	}
	req.Filter = filter
	if s.observer != nil {
		s.observer.SyncStarted(dev, req.SetPresence)
		defer s.observer.SyncEnded(dev)
	}

	resp, err := s.longPoll(ctx, req, timeout)
	if err != nil {
		return err
	}
	return writeResponse(w, resp)
}

// longPoll builds req's response, waiting up to timeout for something to
// send (an initial or full-state sync answers at once).
func (s *Server) longPoll(ctx context.Context, req *Request, timeout time.Duration) (*Response, error) {
	// Subscribe before reading positions, so no wake-up is lost in between.
	l := s.notifier.Listen(req.Device.UserID)
	defer l.Close()
	var deadline <-chan time.Time
	if timeout > 0 && !req.Initial() && !req.FullState {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		resp, found, err := s.build(ctx, req, deadline == nil)
		if err != nil {
			return nil, err
		}
		if found || deadline == nil {
			return resp, nil
		}
		select {
		case <-l.C():
		case <-deadline:
			// Nothing happened: an empty response with the newest token. Build
			// once more so that positions that moved without data for this user
			// are still acknowledged.
			resp, _, err := s.build(ctx, req, true)
			return resp, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// build reads every stream's position and fills the response from req.Since
// to there. Unless final is set, a response with nothing to send is left
// unfinished (the finishers' counts and acknowledgements are for the
// response a long-poll returns, not for the one it drops before waiting).
func (s *Server) build(ctx context.Context, req *Request, final bool) (*Response, bool, error) {
	next, err := s.current(ctx)
	if err != nil {
		return nil, false, err
	}
	resp := NewResponse()
	found := false
	req.upto = next
	for _, st := range s.streams {
		var from int64
		if !req.Initial() {
			from = req.Since[st.Name()]
		}
		to := next[st.Name()]
		if from > to {
			// The stream restarted below the client's position (an in-memory
			// stream after a restart): send what there is now.
			from = 0
		}
		if !req.Initial() && !req.FullState && from == to {
			continue
		}
		got, err := st.Fill(ctx, req, from, to, resp)
		if err != nil {
			return nil, false, err
		}
		found = found || got
	}
	if !found && !final {
		return resp, false, nil
	}
	for _, st := range s.streams {
		if f, ok := st.(Finisher); ok {
			if err := f.Finish(ctx, req, resp); err != nil {
				return nil, false, err
			}
		}
	}
	resp.NextBatch = next.String()
	return resp, found, nil
}

// current reads every stream's position (those in storage.Positions in one query).
func (s *Server) current(ctx context.Context) (Token, error) {
	next := make(Token, len(s.streams))
	var snap *storage.Positions
	if s.positions != nil {
		p, err := s.positions.StreamPositions(ctx)
		if err != nil {
			return nil, err
		}
		snap = &p
	}
	for _, st := range s.streams {
		if ss, ok := st.(SnapshotStream); ok && snap != nil {
			next[st.Name()] = ss.PositionIn(*snap)
			continue
		}
		pos, err := st.Position(ctx)
		if err != nil {
			return nil, err
		}
		next[st.Name()] = pos
	}
	return next, nil
}

func writeResponse(w http.ResponseWriter, resp *Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	return httputil.WriteRawJSON(w, http.StatusOK, b)
}

// loadFilter parses an inline JSON filter or loads a stored one by ID.
func (s *Server) loadFilter(ctx context.Context, user id.UserID, param string) (*mautrix.Filter, error) {
	f := mautrix.DefaultFilter()
	f.Room.Timeline.Limit = 10 // the spec leaves it to the server; Synapse (and SyTest) use 10
	if param == "" {
		return &f, nil
	}
	if param[0] == '{' {
		if err := json.Unmarshal([]byte(param), &f); err != nil {
			return nil, httputil.BadJSON("invalid filter: %v", err)
		}
		return &f, nil
	}
	if s.filters == nil {
		return &f, nil
	}
	stored, err := s.filters.LoadFilter(ctx, user, param)
	if err != nil {
		return nil, err
	}
	return stored, nil
}
