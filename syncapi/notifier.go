package syncapi

import (
	"sync"

	"maunium.net/go/mautrix/id"
)

// Notifier wakes long-polling /sync requests. It never carries data, only the
// fact that a stream advanced for a user: the woken request then reads from
// storage. Listeners subscribe before they read positions, so a wake-up that
// happens between the read and the wait is never lost.
type Notifier struct {
	// mu guards listeners and roomUsers.
	mu        sync.Mutex
	listeners map[id.UserID]map[*Listener]struct{}
	// roomUsers maps a room to the local users who should be woken by its events
	// (joined, invited or knocking). Streams keep it current.
	roomUsers map[id.RoomID]map[id.UserID]struct{}
	// remote, when set, publishes wake-ups to other processes (LinkProcesses).
	remote *remoteLink
}

// Listener is one waiting /sync request.
type Listener struct {
	n    *Notifier
	user id.UserID
	c    chan struct{}
}

// NewNotifier returns an empty notifier.
func NewNotifier() *Notifier {
	return &Notifier{
		listeners: make(map[id.UserID]map[*Listener]struct{}),
		roomUsers: make(map[id.RoomID]map[id.UserID]struct{}),
	}
}

// Listen registers a listener for user. Call Close when done.
func (n *Notifier) Listen(user id.UserID) *Listener {
	l := &Listener{n: n, user: user, c: make(chan struct{}, 1)}
	n.mu.Lock()
	set := n.listeners[user]
	if set == nil {
		set = make(map[*Listener]struct{})
		n.listeners[user] = set
	}
	set[l] = struct{}{}
	n.mu.Unlock()
	return l
}

// C is signalled when something may have happened for the listener's user.
func (l *Listener) C() <-chan struct{} { return l.c }

// Close unregisters the listener.
func (l *Listener) Close() {
	l.n.mu.Lock()
	if set := l.n.listeners[l.user]; set != nil {
		delete(set, l)
		if len(set) == 0 {
			delete(l.n.listeners, l.user)
		}
	}
	l.n.mu.Unlock()
}

// _wake must be called with mu held.
func (n *Notifier) _wake(user id.UserID) {
	for l := range n.listeners[user] {
		select {
		case l.c <- struct{}{}:
		default:
		}
	}
}

// WakeUsers wakes every listener of the given users.
func (n *Notifier) WakeUsers(users ...id.UserID) {
	n.mu.Lock()
	for _, u := range users {
		n._wake(u)
	}
	n._queueRemote("", users)
	n.mu.Unlock()
}

// WakeRoom wakes every local user tracked in room, plus extra users (for
// example the target of a membership change, who may not be tracked yet).
func (n *Notifier) WakeRoom(room id.RoomID, extra ...id.UserID) {
	n.mu.Lock()
	for u := range n.roomUsers[room] {
		n._wake(u)
	}
	for _, u := range extra {
		n._wake(u)
	}
	n._queueRemote(room, extra)
	n.mu.Unlock()
}

// SetRoomUser records whether user should be woken by room's events.
func (n *Notifier) SetRoomUser(room id.RoomID, user id.UserID, tracked bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	set := n.roomUsers[room]
	if tracked {
		if set == nil {
			set = make(map[id.UserID]struct{})
			n.roomUsers[room] = set
		}
		set[user] = struct{}{}
		return
	}
	delete(set, user)
	if len(set) == 0 {
		delete(n.roomUsers, room)
	}
}

// RoomUsers returns the users tracked in room.
func (n *Notifier) RoomUsers(room id.RoomID) []id.UserID {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]id.UserID, 0, len(n.roomUsers[room]))
	for u := range n.roomUsers[room] {
		out = append(out, u)
	}
	return out
}
