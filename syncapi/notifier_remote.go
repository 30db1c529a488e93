package syncapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// Several Parley processes may share one PostgreSQL database. Data written
// by one must wake the /sync long-polls waiting in the others: every local
// wake-up is also published on the database's change feed (coalesced, after
// the data was committed), and wake-ups published by other processes are
// applied here. A published room wake-up names the room, not its users: the
// receiving process reads its own local members of the room from storage,
// since memberships may have changed through another process.

// remoteTopicPrefix starts every change-feed topic that carries wake-ups.
const remoteTopicPrefix = "wake "

// maxRemotePayload keeps a published topic under PostgreSQL's 8000-byte
// NOTIFY payload limit.
const maxRemotePayload = 7000

// remoteLink is the notifier's connection to other processes.
type remoteLink struct {
	feed    storage.ChangeFeed
	members func(ctx context.Context, room id.RoomID) ([]id.UserID, error)
	log     *zap.Logger
	// nonce identifies this process's own wake-ups, which it skips on receipt.
	nonce string
	kick  chan struct{}
	// pending rooms and users to publish; guarded by Notifier.mu.
	rooms map[id.RoomID]struct{}
	users map[id.UserID]struct{}
}

// LinkProcesses makes n publish its wake-ups on feed and apply those of
// other processes, until ctx ends. members lists the local users of a room
// who should be woken by its events (joined, invited or knocking). It does
// nothing unless feed's database can be shared (PostgreSQL).
func (n *Notifier) LinkProcesses(ctx context.Context, feed storage.ChangeFeed,
	members func(ctx context.Context, room id.RoomID) ([]id.UserID, error), log *zap.Logger) {
	if !feed.SharedDatabase() {
		return
	}
	r := &remoteLink{feed: feed, members: members, log: log, nonce: processNonce(), kick: make(chan struct{}, 1),
		rooms: map[id.RoomID]struct{}{}, users: map[id.UserID]struct{}{}}
	n.mu.Lock()
	n.remote = r
	n.mu.Unlock()
	go n.publishLoop(ctx, r)
	go func() {
		if err := feed.ListenChanges(ctx, func(topic string) { n.applyRemote(ctx, r, topic) }); err != nil && ctx.Err() == nil {
			log.Warn("sync change feed", zap.Error(err))
		}
	}()
}

// processNonce names this process in what it publishes on the change feed,
// so that it can skip its own messages when they come back.
func processNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// queueRemote records wake-ups to publish; call with mu held.
func (n *Notifier) _queueRemote(room id.RoomID, users []id.UserID) {
	r := n.remote
	if r == nil {
		return
	}
	if room != "" {
		r.rooms[room] = struct{}{}
	}
	for _, u := range users {
		r.users[u] = struct{}{}
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// publishLoop publishes queued wake-ups; those queued while a publication
// is under way go out together in the next one.
func (n *Notifier) publishLoop(ctx context.Context, r *remoteLink) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		n.mu.Lock()
		rooms, users := r.rooms, r.users
		r.rooms, r.users = map[id.RoomID]struct{}{}, map[id.UserID]struct{}{}
		n.mu.Unlock()
		for _, payload := range remotePayloads(r.nonce, rooms, users) {
			if err := r.feed.AnnounceChange(ctx, payload); err != nil && ctx.Err() == nil {
				r.log.Warn("publish sync wake-up", zap.Error(err))
			}
		}
	}
}

// remotePayloads encodes wake-ups as topics: "wake NONCE", then one line
// per room ("r ROOM") or user ("u USER"), split to stay under the limit.
func remotePayloads(nonce string, rooms map[id.RoomID]struct{}, users map[id.UserID]struct{}) []string {
	var out []string
	var b strings.Builder
	add := func(line string) {
		if b.Len() > 0 && b.Len()+1+len(line) > maxRemotePayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() == 0 {
			b.WriteString(remoteTopicPrefix + nonce)
		}
		b.WriteByte('\n')
		b.WriteString(line)
	}
	for room := range rooms {
		add("r " + string(room))
	}
	for u := range users {
		add("u " + string(u))
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// applyRemote applies a change-feed topic: wake-ups of other processes, or
// "" (the feed may have missed changes), which wakes every listener.
func (n *Notifier) applyRemote(ctx context.Context, r *remoteLink, topic string) {
	if topic == "" {
		n.wakeAll()
		return
	}
	rest, ok := strings.CutPrefix(topic, remoteTopicPrefix)
	if !ok {
		return
	}
	lines := strings.Split(rest, "\n")
	if lines[0] == r.nonce {
		return // our own, already applied
	}
	var users []id.UserID
	for _, line := range lines[1:] {
		kind, v, _ := strings.Cut(line, " ")
		switch kind {
		case "u":
			users = append(users, id.UserID(v))
		case "r":
			room := id.RoomID(v)
			ms, err := r.members(ctx, room)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("local members of a room woken by another process", zap.Error(err))
				}
				continue
			}
			n.mu.Lock()
			set := make(map[id.UserID]struct{}, len(ms))
			for _, u := range ms {
				set[u] = struct{}{}
			}
			if len(set) > 0 {
				n.roomUsers[room] = set
			} else {
				delete(n.roomUsers, room)
			}
			n.mu.Unlock()
			users = append(users, ms...)
		}
	}
	n.mu.Lock()
	for _, u := range users {
		n._wake(u)
	}
	n.mu.Unlock()
}

// wakeAll wakes every listener of this process.
func (n *Notifier) wakeAll() {
	n.mu.Lock()
	for u := range n.listeners {
		n._wake(u)
	}
	n.mu.Unlock()
}
