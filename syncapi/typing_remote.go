package syncapi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// Typing notifications live in each process's memory. When several
// processes share a PostgreSQL database, each typing change a process
// receives (from a client or over federation) is published on the change
// feed, and the other processes apply it to their own typing state, so a
// client sees everyone's typing whichever process its /sync reaches.

// typingTopicPrefix starts every change-feed topic that carries a typing change.
const typingTopicPrefix = "typing "

// typingLink publishes this process's typing changes.
type typingLink struct {
	nonce string
	out   chan string
}

// LinkTyping shares typing changes with the other processes on feed's
// database until ctx ends; it does nothing unless the database can be shared.
func (in *Inbox) LinkTyping(ctx context.Context, feed storage.ChangeFeed) {
	if !feed.SharedDatabase() {
		return
	}
	l := &typingLink{nonce: processNonce(), out: make(chan string, 1024)}
	in.typingLink.Store(l)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case topic := <-l.out:
				if err := feed.AnnounceChange(ctx, topic); err != nil && ctx.Err() == nil {
					in.log.Warn("publish typing change", zap.Error(err))
				}
			}
		}
	}()
	go func() {
		err := feed.ListenChanges(ctx, func(topic string) {
			rest, ok := strings.CutPrefix(topic, typingTopicPrefix)
			if !ok {
				return
			}
			f := strings.Fields(rest)
			if len(f) != 5 || f[0] == l.nonce {
				return
			}
			ms, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return
			}
			in.typing.set(id.RoomID(f[1]), id.UserID(f[2]), f[3] == "1", time.Duration(ms)*time.Millisecond, false)
		})
		if err != nil && ctx.Err() == nil {
			in.log.Warn("typing change feed", zap.Error(err))
		}
	}()
}

// setTyping records a typing change this process received and shares it
// with the other processes.
func (in *Inbox) setTyping(room id.RoomID, user id.UserID, typing bool, timeout time.Duration) {
	if in.typing.set(room, user, typing, timeout, true) {
		in.typingToAppServices(room)
	}
	l := in.typingLink.Load()
	if l == nil {
		return
	}
	flag := "0"
	if typing {
		flag = "1"
	}
	topic := typingTopicPrefix + strings.Join([]string{l.nonce, string(room), string(user), flag, strconv.FormatInt(timeout.Milliseconds(), 10)}, " ")
	select {
	case l.out <- topic:
	default:
		in.log.Warn("typing change not shared with other processes: queue full", zap.String("room_id", string(room)))
	}
}
