package syncapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// carryRulesOnJoin copies a local user's push rules for an upgraded room's
// predecessor to the new room when they join it (as Synapse and Dendrite do):
// the upgrader and every local member who follows the tombstone, whether the
// upgrade happened here or on another server, keep their per-room settings.
// A rule that already exists for the new room is left alone.
func (in *Inbox) carryRulesOnJoin(ctx context.Context, ev *storage.Event) {
	if in.roomStore == nil || ev.Type != event.StateMember.Type || ev.StateKey == nil || ev.Membership != "join" {
		return
	}
	user := id.UserID(*ev.StateKey)
	if !in.isLocal(user) || gjson.GetBytes(ev.Unsigned, "prev_content.membership").Str == "join" {
		return
	}
	create, err := in.roomStore.CurrentStateEvent(ctx, ev.RoomID, event.StateCreate.Type, "")
	if err != nil {
		return
	}
	old := gjson.GetBytes(create.JSON, "content.predecessor.room_id").Str
	if old == "" || old == string(ev.RoomID) {
		return
	}
	in.carryDirect(ctx, user, id.RoomID(old), ev.RoomID)
	stored, err := in.store.PushRules(ctx, user)
	if err != nil || !slices.ContainsFunc(stored, func(r storage.PushRule) bool {
		return !r.Default && (strings.Contains(r.RuleID, old) || strings.Contains(string(r.Conditions), old))
	}) {
		return // nothing to copy: no write (which would reach /sync as account data)
	}
	newRoom := string(ev.RoomID)
	changed := false
	err = in.store.UpdatePushRules(ctx, user, func(rules []storage.PushRule) ([]storage.PushRule, error) {
		have := map[string]bool{}
		for _, r := range rules {
			have[r.Kind+"\x00"+r.RuleID] = true
		}
		// Each copy goes just after its original: same place in the order.
		out := make([]storage.PushRule, 0, len(rules)+1)
		for _, r := range rules {
			out = append(out, r)
			if r.Default || !strings.Contains(r.RuleID, old) && !strings.Contains(string(r.Conditions), old) {
				continue
			}
			c := r
			c.RuleID = strings.ReplaceAll(r.RuleID, old, newRoom)
			if len(r.Conditions) > 0 {
				c.Conditions = []byte(strings.ReplaceAll(string(r.Conditions), old, newRoom))
			}
			if c.RuleID == r.RuleID || have[c.Kind+"\x00"+c.RuleID] {
				continue // a rule not named after the room, or one set for the new room already
			}
			have[c.Kind+"\x00"+c.RuleID] = true
			out = append(out, c)
			changed = true
		}
		if !changed {
			return rules, nil
		}
		next := map[string]int64{}
		for i := range out {
			if !out[i].Default {
				out[i].Priority = next[out[i].Kind]
				next[out[i].Kind]++
			}
		}
		return out, nil
	})
	if err != nil {
		in.log.Warn("copy push rules to upgraded room", zap.Stringer("user_id", user), zap.Stringer("room_id", ev.RoomID), zap.Error(err))
		return
	}
	if changed {
		in.forgetRules(user)
		in.notifier.WakeUsers(user)
	}
}

// errUnchanged ends an account data update that would change nothing.
var errUnchanged = errors.New("unchanged")

// carryDirect adds an upgraded room to the user's m.direct account data
// wherever its predecessor is listed (the room stays a direct chat).
func (in *Inbox) carryDirect(ctx context.Context, user id.UserID, old, newRoom id.RoomID) {
	cur, err := in.store.GetAccountData(ctx, user, "", "m.direct")
	if err != nil || !bytes.Contains(cur, []byte(old)) {
		return
	}
	_, err = in.store.UpdateAccountData(ctx, user, "", "m.direct", func(prev json.RawMessage) (json.RawMessage, error) {
		var m map[string][]id.RoomID
		if err := json.Unmarshal(prev, &m); err != nil {
			return nil, errUnchanged // not the spec's shape: left alone
		}
		changed := false
		for u, rooms := range m {
			if slices.Contains(rooms, old) && !slices.Contains(rooms, newRoom) {
				m[u] = append(rooms, newRoom)
				changed = true
			}
		}
		if !changed {
			return nil, errUnchanged
		}
		return json.Marshal(m)
	})
	if err != nil {
		if !errors.Is(err, errUnchanged) {
			in.log.Warn("copy m.direct to upgraded room", zap.Stringer("user_id", user), zap.Stringer("room_id", newRoom), zap.Error(err))
		}
		return
	}
	in.notifier.WakeUsers(user)
}
