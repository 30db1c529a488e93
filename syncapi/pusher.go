package syncapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// pusherJSON is a pusher as GET /pushers and POST /pushers/set show it.
type pusherJSON struct {
	PushKey           *string         `json:"pushkey"`
	Kind              *string         `json:"kind"`
	AppID             *string         `json:"app_id"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        *string         `json:"profile_tag,omitempty"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append,omitempty"`
}

// getPushers handles GET /pushers.
func (in *Inbox) getPushers(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	ps, err := in.store.Pushers(r.Context(), dev.UserID)
	if err != nil {
		return err
	}
	out := make([]pusherJSON, 0, len(ps))
	for _, p := range ps {
		p := p
		pj := pusherJSON{PushKey: &p.PushKey, Kind: &p.Kind, AppID: &p.AppID, AppDisplayName: &p.AppDisplayName,
			DeviceDisplayName: &p.DeviceDisplayName, Lang: &p.Lang, Data: p.Data}
		if p.ProfileTag != "" {
			pj.ProfileTag = &p.ProfileTag
		}
		out = append(out, pj)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"pushers": out})
}

// setPusher handles POST /pushers/set.
func (in *Inbox) setPusher(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var raw map[string]json.RawMessage
	if err := httputil.DecodeJSONObject(r, &raw); err != nil {
		return err
	}
	var body pusherJSON
	b, _ := json.Marshal(raw)
	if err := httputil.UnmarshalObject(b, &body); err != nil {
		return err
	}
	if body.AppID == nil || *body.AppID == "" {
		return httputil.MissingParam("app_id is required")
	}
	if body.PushKey == nil || *body.PushKey == "" {
		return httputil.MissingParam("pushkey is required")
	}
	if len(*body.AppID) > 64 {
		return httputil.InvalidParam("app_id must be at most 64 characters")
	}
	if len(*body.PushKey) > 512 {
		return httputil.InvalidParam("pushkey must be at most 512 bytes")
	}
	if k, ok := raw["kind"]; !ok {
		return httputil.MissingParam("kind is required")
	} else if string(bytes.TrimSpace(k)) == "null" {
		err := in.store.DeletePusher(r.Context(), dev.UserID, *body.AppID, *body.PushKey)
		in.forgetPushers()
		if err != nil {
			return err
		}
		return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
	}
	for name, v := range map[string]*string{"app_display_name": body.AppDisplayName, "device_display_name": body.DeviceDisplayName, "lang": body.Lang} {
		if v == nil {
			return httputil.MissingParam("%s is required", name)
		}
	}
	if body.Data == nil {
		return httputil.MissingParam("data is required")
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(body.Data, &data); err != nil || data == nil {
		return httputil.BadJSON("data must be an object")
	}
	switch *body.Kind {
	case "http":
		var u string
		if err := json.Unmarshal(data["url"], &u); err != nil || u == "" {
			return httputil.MissingParam("data.url is required for http pushers")
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.Path != "/_matrix/push/v1/notify" {
			return httputil.InvalidParam("data.url must be an http(s) URL with path /_matrix/push/v1/notify")
		}
	case "email":
	default:
		return httputil.InvalidParam("unsupported pusher kind %q", *body.Kind)
	}
	p := storage.Pusher{UserID: dev.UserID, AppID: *body.AppID, PushKey: *body.PushKey, Kind: *body.Kind,
		AppDisplayName: *body.AppDisplayName, DeviceDisplayName: *body.DeviceDisplayName, Lang: *body.Lang,
		Data: body.Data, DeviceID: dev.DeviceID, CreatedTS: time.Now().UnixMilli()}
	if body.ProfileTag != nil {
		p.ProfileTag = *body.ProfileTag
	}
	err := in.store.SetPusher(r.Context(), p, body.Append)
	in.forgetPushers()
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// pushersOf returns the pushers of users, from a cache that pusher changes
// made through this process clear (the only writers of pushers).
func (in *Inbox) pushersOf(ctx context.Context, users []id.UserID) ([]storage.Pusher, error) {
	var missing []id.UserID
	var out []storage.Pusher
	in.pushersMu.Lock()
	gen := in.pushersGen
	for _, u := range users {
		ps, ok := in.pushers[u]
		if !ok {
			missing = append(missing, u)
		}
		out = append(out, ps...)
	}
	in.pushersMu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	loaded, err := in.store.PushersOf(ctx, missing)
	if err != nil {
		return nil, err
	}
	byUser := make(map[id.UserID][]storage.Pusher, len(missing))
	for _, u := range missing {
		byUser[u] = nil
	}
	for _, p := range loaded {
		byUser[p.UserID] = append(byUser[p.UserID], p)
	}
	in.pushersMu.Lock()
	if in.pushersGen == gen { // no change since we read: safe to cache
		if len(in.pushers) >= maxCachedRulesets {
			clear(in.pushers)
		}
		for u, ps := range byUser {
			in.pushers[u] = ps
		}
	}
	in.pushersMu.Unlock()
	return append(out, loaded...), nil
}

// forgetPushers clears the pusher cache after a change.
func (in *Inbox) forgetPushers() {
	in.pushersMu.Lock()
	clear(in.pushers)
	in.pushersGen++
	in.pushersMu.Unlock()
}

// pushJobs builds the gateway requests for users notified by ev.
func (in *Inbox) pushJobs(ctx context.Context, ev *PushEvent, users []id.UserID, acts map[id.UserID]pushrules.PushActionArray) ([]storage.PushJob, error) {
	pushers, err := in.pushersOf(ctx, users)
	if err != nil {
		return nil, err
	}
	var jobs []storage.PushJob
	now := time.Now().UnixMilli()
	unreads := map[id.UserID]int{}
	for _, p := range pushers {
		gw, data, ok := httpPusher(p)
		if !ok {
			continue
		}
		format, _ := data["format"].(string)
		unread, ok := unreads[p.UserID]
		if !ok {
			if unread, err = in.store.UnreadTotal(ctx, p.UserID); err != nil {
				return nil, err
			}
			unreads[p.UserID] = unread
		}
		payload := notifyPayload(ev, p, data, format, acts[p.UserID].Should(), unread+1)
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, storage.PushJob{UserID: p.UserID, AppID: p.AppID, PushKey: p.PushKey, URL: gw, Payload: b, NextAttemptTS: now})
	}
	return jobs, nil
}

// httpPusher returns an HTTP pusher's gateway URL and its data without the
// URL (what the gateway is sent); ok is false for other kinds and bad data.
func httpPusher(p storage.Pusher) (gw string, data map[string]any, ok bool) {
	if p.Kind != "http" || json.Unmarshal(p.Data, &data) != nil {
		return "", nil, false
	}
	gw, _ = data["url"].(string)
	delete(data, "url")
	return gw, data, true
}

// badgeUpdate sends a user's pushers the new unread count when a read
// receipt changed it (a push with counts only, which gateways turn into an
// app badge), as Synapse does.
type badgeUpdate struct {
	in      *Inbox
	user    id.UserID
	pushers []storage.Pusher
	unread  int
}

// badgeBefore notes the user's unread count before a receipt; nothing is
// read when they have no HTTP pusher.
func (in *Inbox) badgeBefore(ctx context.Context, user id.UserID) *badgeUpdate {
	ps, err := in.pushersOf(ctx, []id.UserID{user})
	if err != nil || !slices.ContainsFunc(ps, func(p storage.Pusher) bool { return p.Kind == "http" }) {
		return nil
	}
	unread, err := in.store.UnreadTotal(ctx, user)
	if err != nil {
		return nil
	}
	return &badgeUpdate{in: in, user: user, pushers: ps, unread: unread}
}

// after queues the badge pushes if the count changed.
func (b *badgeUpdate) after(ctx context.Context) {
	if b == nil {
		return
	}
	unread, err := b.in.store.UnreadTotal(ctx, b.user)
	if err != nil || unread == b.unread {
		return
	}
	var jobs []storage.PushJob
	now := time.Now().UnixMilli()
	for _, p := range b.pushers {
		gw, data, ok := httpPusher(p)
		if !ok {
			continue
		}
		delete(data, "format")
		device := map[string]any{"app_id": p.AppID, "pushkey": p.PushKey, "pushkey_ts": p.CreatedTS / 1000, "data": data}
		payload, err := json.Marshal(map[string]any{"notification": map[string]any{
			"counts": map[string]any{"unread": unread}, "devices": []any{device}, "prio": "high"}})
		if err != nil {
			continue
		}
		jobs = append(jobs, storage.PushJob{UserID: p.UserID, AppID: p.AppID, PushKey: p.PushKey, URL: gw, Payload: payload, NextAttemptTS: now})
	}
	if len(jobs) == 0 {
		return
	}
	if err := b.in.store.AddNotifications(ctx, nil, jobs); err != nil {
		b.in.log.Warn("queue badge push", zap.Stringer("user_id", b.user), zap.Error(err))
		return
	}
	b.in.pusher.kick()
}

// notifyPayload is the body of POST /_matrix/push/v1/notify (push gateway API).
func notifyPayload(ev *PushEvent, p storage.Pusher, data map[string]any, format string, should pushrules.PushActionArrayShould, unread int) map[string]any {
	tweaks := map[string]any{}
	if should.Highlight {
		tweaks["highlight"] = true
	}
	if should.PlaySound {
		tweaks["sound"] = should.SoundName
	}
	device := map[string]any{"app_id": p.AppID, "pushkey": p.PushKey, "pushkey_ts": p.CreatedTS / 1000, "data": data, "tweaks": tweaks}
	n := map[string]any{
		"id":       ev.Event.ID, // the pre-r0 name, still read by some gateways (Synapse sends both)
		"event_id": ev.Event.ID,
		"room_id":  ev.Event.RoomID,
		"counts":   map[string]any{"unread": unread},
		"devices":  []any{device},
	}
	prio := "low"
	if ev.Event.Type == event.EventMessage || ev.Event.Type == event.EventEncrypted || ev.Event.Type == event.StateMember || should.Highlight {
		prio = "high"
	}
	n["prio"] = prio
	if format != "event_id_only" {
		n["type"] = ev.Event.Type.Type
		n["sender"] = ev.Event.Sender
		n["content"] = ev.Event.Content.Raw
		if name := ev.DisplayNames[ev.Event.Sender]; name != "" {
			n["sender_display_name"] = name
		}
		if ev.RoomName != "" {
			n["room_name"] = ev.RoomName
		}
		if ev.Event.Type == event.StateMember && ev.Event.StateKey != nil {
			n["membership"] = ev.Event.Content.Raw["membership"]
			n["user_is_target"] = id.UserID(*ev.Event.StateKey) == p.UserID
		}
	}
	return map[string]any{"notification": n}
}

// pushSender delivers queued pushes with exponential backoff. The queue is
// in the database, so a restart loses nothing: run starts with what is due.
type pushSender struct {
	in     *Inbox
	client *http.Client
	wake   chan struct{}
}

func newPushSender(in *Inbox, client *http.Client) *pushSender {
	return &pushSender{in: in, client: client, wake: make(chan struct{}, 1)}
}

// kick makes the sender look at the queue now.
func (s *pushSender) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pushBaseBackoff is the delay after the first failed attempt; it doubles after each one.
const pushBaseBackoff = 500 * time.Millisecond

func (s *pushSender) run(ctx context.Context) {
	for {
		wait := s.sendDue(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue sends every due job and returns how long to sleep before the next one.
func (s *pushSender) sendDue(ctx context.Context) time.Duration {
	const idle = time.Minute
	for ctx.Err() == nil {
		now := time.Now()
		jobs, err := s.in.store.DuePushJobs(ctx, now.UnixMilli(), 50)
		if err != nil {
			if ctx.Err() == nil {
				s.in.log.Error("load push queue", zap.Error(err))
			}
			return 5 * time.Second
		}
		if len(jobs) == 0 {
			next, err := s.in.store.NextPushJobTS(ctx)
			if err != nil {
				return idle
			}
			return min(max(time.Until(time.UnixMilli(next)), 0), idle)
		}
		for _, j := range jobs {
			s.attempt(ctx, j)
		}
	}
	return idle
}

// attempt sends one job and records the outcome.
func (s *pushSender) attempt(ctx context.Context, j storage.PushJob) {
	log := s.in.log.With(zap.String("user_id", string(j.UserID)), zap.String("app_id", j.AppID))
	rejected, err := s.post(ctx, j)
	if ctx.Err() != nil {
		return
	}
	var perm permanentError
	switch {
	case err == nil:
		if err := s.in.store.DeletePushJob(ctx, j.ID); err != nil {
			log.Error("delete sent push", zap.Error(err))
		}
		for _, key := range rejected {
			if key == j.PushKey {
				log.Info("push gateway rejected pushkey, removing pusher")
				if err := s.in.store.DeletePusher(ctx, j.UserID, j.AppID, j.PushKey); err != nil {
					log.Error("delete rejected pusher", zap.Error(err))
				}
				s.in.forgetPushers()
			}
		}
	case errors.As(err, &perm) || j.Attempts+1 >= s.in.cfg.Sync.PushMaxAttempts:
		log.Warn("dropping push", zap.Int("attempts", j.Attempts+1), zap.Error(err))
		if err := s.in.store.DeletePushJob(ctx, j.ID); err != nil {
			log.Error("delete dropped push", zap.Error(err))
		}
	default:
		backoff := min(pushBaseBackoff<<min(j.Attempts, 20), s.in.cfg.Sync.PushMaxBackoff)
		log.Debug("push failed, will retry", zap.Duration("backoff", backoff), zap.Error(err))
		if err := s.in.store.RetryPushJob(ctx, j.ID, j.Attempts+1, time.Now().Add(backoff).UnixMilli()); err != nil {
			log.Error("reschedule push", zap.Error(err))
		}
	}
}

type permanentError struct{ status int }

// Error implements error.
func (e permanentError) Error() string { return "push gateway answered " + http.StatusText(e.status) }

// post sends the payload and returns the pushkeys the gateway rejected.
func (s *pushSender) post(ctx context.Context, j storage.PushJob) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(j.Payload))
	if err != nil {
		return nil, permanentError{http.StatusBadRequest}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		var out struct {
			Rejected []string `json:"rejected"`
		}
		_ = json.Unmarshal(body, &out)
		return out.Rejected, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return nil, permanentError{resp.StatusCode}
	}
	return nil, errors.New("push gateway answered " + resp.Status)
}
