// Package retention enforces message retention: each room's m.room.retention
// max_lifetime (clamped to the configured allowed range, or the server
// default when the room has none) and per-message self-destruct times
// (MSC2228's m.self_destruct_after). A background job purges expired events;
// state events and forward extremities are never purged, so the room's DAG
// and state stay valid and the room keeps working.
package retention

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/logging"
	"parley/storage"
)

// Store is what the purge job reads and writes.
type Store interface {
	ListRooms(ctx context.Context) ([]storage.Room, error)
	RoomMemberships(ctx context.Context, roomID id.RoomID) ([]storage.Membership, error)
	CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (*storage.Event, error)
	storage.RetentionStore
}

// Job is the purge job.
type Job struct {
	cfg   *config.Config
	store Store
	log   *zap.Logger
	// now is the clock; tests replace it.
	now func() time.Time

	// mu serialises purge runs (the ticker and the admin endpoint).
	mu sync.Mutex

	statusMu sync.Mutex // guards status
	status   Status
}

// Status describes the purge job's last run.
type Status struct {
	Enabled    bool      `json:"enabled"`
	LastRun    time.Time `json:"last_run"`
	LastPurged int       `json:"last_purged"`
	LastError  string    `json:"last_error,omitempty"`
	Running    bool      `json:"running"`
}

// Status returns the job's state for the admin API.
func (j *Job) Status() Status {
	j.statusMu.Lock()
	defer j.statusMu.Unlock()
	st := j.status
	st.Enabled = j.cfg.Retention.Enabled
	return st
}

// New returns a purge job.
func New(cfg *config.Config, store Store, log *zap.Logger) *Job {
	return &Job{cfg: cfg, store: store, log: log, now: time.Now}
}

// Run purges every retention.purge_interval until ctx ends. It does nothing
// when retention is disabled.
func (j *Job) Run(ctx context.Context) {
	if !j.cfg.Retention.Enabled {
		return
	}
	t := time.NewTicker(j.cfg.Retention.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := j.PurgeOnce(ctx); err != nil {
				j.log.Error("retention purge", zap.Error(err))
			} else if n > 0 {
				j.log.Info("retention purge", zap.Int("purged", n))
			}
		}
	}
}

// MaxLifetime is the effective max_lifetime of a room: its m.room.retention
// max_lifetime clamped to the allowed range, else the server default. 0 means forever.
func (j *Job) MaxLifetime(ctx context.Context, roomID id.RoomID) (time.Duration, error) {
	r := j.cfg.Retention
	life := r.DefaultMaxLifetime
	ev, err := j.store.CurrentStateEvent(ctx, roomID, "m.room.retention", "")
	switch {
	case err == nil:
		if v := gjson.GetBytes(ev.JSON, "content.max_lifetime"); v.Type == gjson.Number && v.Int() > 0 {
			life = time.Duration(v.Int()) * time.Millisecond
		}
	case err != storage.ErrNotFound:
		return 0, err
	}
	if life == 0 {
		return 0, nil
	}
	if r.AllowedMinLifetime > 0 && life < r.AllowedMinLifetime {
		life = r.AllowedMinLifetime
	}
	if r.AllowedMaxLifetime > 0 && life > r.AllowedMaxLifetime {
		life = r.AllowedMaxLifetime
	}
	return life, nil
}

// PurgeOnce purges expired events in every room and returns how many it deleted.
func (j *Job) PurgeOnce(ctx context.Context) (n int, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.statusMu.Lock()
	j.status.Running = true
	j.statusMu.Unlock()
	defer func() {
		j.statusMu.Lock()
		j.status.Running, j.status.LastRun, j.status.LastPurged = false, time.Now(), n
		j.status.LastError = ""
		if err != nil {
			j.status.LastError = err.Error()
		}
		j.statusMu.Unlock()
	}()
	rooms, err := j.store.ListRooms(ctx)
	if err != nil {
		return 0, err
	}
	now := j.now()
	total := 0
	for _, room := range rooms {
		life, err := j.MaxLifetime(ctx, room.RoomID)
		if err != nil {
			return total, err
		}
		before := int64(0)
		if life > 0 {
			before = now.Add(-life).UnixMilli()
		}
		if j.cfg.Retention.PurgeRoomsWithoutLocalUsers {
			abandoned, err := j.abandoned(ctx, room.RoomID)
			if err != nil {
				return total, err
			}
			if abandoned {
				before = now.Add(time.Hour).UnixMilli() // every message
			}
		}
		n, err := j.store.PurgeEvents(ctx, room.RoomID, before, now.UnixMilli())
		if err != nil {
			return total, err
		}
		if n > 0 {
			logging.From(ctx, j.log).Info("purged expired events", logging.RoomID(room.RoomID), zap.Int("events", n))
		}
		total += n
	}
	return total, nil
}

// abandoned reports whether no local user is joined to, invited to or knocking on the room.
func (j *Job) abandoned(ctx context.Context, roomID id.RoomID) (bool, error) {
	ms, err := j.store.RoomMemberships(ctx, roomID)
	if err != nil {
		return false, err
	}
	suffix := ":" + j.cfg.ServerName
	for _, m := range ms {
		if (m.Membership == "join" || m.Membership == "invite" || m.Membership == "knock") && strings.HasSuffix(string(m.UserID), suffix) {
			return false, nil
		}
	}
	return true, nil
}

// SetClock replaces the job's clock (tests).
func (j *Job) SetClock(now func() time.Time) { j.now = now }
