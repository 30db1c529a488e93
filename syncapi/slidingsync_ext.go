package syncapi

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ssExtensions are the extension configs of a request. An extension runs only
// when its "enabled" is true.
type ssExtensions struct {
	// ToDevice is MSC3885.
	ToDevice *struct {
		Enabled *bool  `json:"enabled"`
		Since   string `json:"since"`
		Limit   *int   `json:"limit"`
	} `json:"to_device"`
	// E2EE is MSC3884.
	E2EE *struct {
		Enabled *bool `json:"enabled"`
	} `json:"e2ee"`
	// AccountData is MSC3959, Receipts MSC3960, Typing MSC3961.
	AccountData *ssExtScope `json:"account_data"`
	Receipts    *ssExtScope `json:"receipts"`
	Typing      *ssExtScope `json:"typing"`
}

// ssExtScope configures an extension scoped to rooms of the response:
// lists names lists ("*": all) and rooms names room subscriptions ("*": all);
// both default to ["*"].
type ssExtScope struct {
	Enabled *bool    `json:"enabled"`
	Lists   []string `json:"lists"`
	Rooms   []string `json:"rooms"`
}

func enabled(p *bool) bool { return p != nil && *p }

// scopedRooms returns the rooms of the lists and subscriptions sc names.
func (b *ssBuild) scopedRooms(sc *ssExtScope) []id.RoomID {
	lists, rooms := sc.Lists, sc.Rooms
	if lists == nil {
		lists = []string{"*"}
	}
	if rooms == nil {
		rooms = []string{"*"}
	}
	set := map[id.RoomID]bool{}
	for name, rs := range b.listRooms {
		if slices.Contains(lists, "*") || slices.Contains(lists, name) {
			for _, r := range rs {
				set[r] = true
			}
		}
	}
	for _, r := range b.subRooms {
		if slices.Contains(rooms, "*") || slices.Contains(rooms, string(r)) {
			set[r] = true
		}
	}
	out := make([]id.RoomID, 0, len(set))
	for r := range set {
		// Only rooms the user is joined to have receipts, typing and room account data.
		if e := b.byRoom[r]; e != nil && e.m.Membership == "join" {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// from returns the position of stream name the previous response covered
// (0 on a first request, or when the stream restarted below it).
func (b *ssBuild) from(name StreamName) int64 {
	if b.prev == nil {
		return 0
	}
	f := b.prev.token[name]
	if f > b.next[name] {
		return 0
	}
	return f
}

func (b *ssBuild) stream(name StreamName) Stream {
	for _, st := range b.s.d.Streams {
		if st.Name() == name {
			return st
		}
	}
	return nil
}

// extensions fills resp.Extensions; it reports whether any extension has
// data that should end a long-poll.
func (b *ssBuild) extensions(ctx context.Context, resp *ssResponse) (bool, error) {
	ext := b.req.Extensions
	found := false
	steps := []struct {
		on  bool
		key string
		fn  func(context.Context) (any, bool, error)
	}{
		{ext.ToDevice != nil && enabled(ext.ToDevice.Enabled), "to_device", b.toDevice},
		{ext.E2EE != nil && enabled(ext.E2EE.Enabled), "e2ee", b.e2ee},
		{ext.AccountData != nil && enabled(ext.AccountData.Enabled), "account_data", b.accountData},
		{ext.Receipts != nil && enabled(ext.Receipts.Enabled), "receipts", b.receipts},
		{ext.Typing != nil && enabled(ext.Typing.Enabled), "typing", b.typing},
	}
	for _, s := range steps {
		if !s.on {
			continue
		}
		v, got, err := s.fn(ctx)
		if err != nil {
			return false, err
		}
		resp.Extensions[s.key] = v
		found = found || got
	}
	return found, nil
}

// toDevice is MSC3885: messages after the request's since, which also
// acknowledges (deletes) the messages up to it; next_batch is the since of
// the next request. The messages come from the to-device sync stream.
func (b *ssBuild) toDevice(ctx context.Context) (any, bool, error) {
	to := b.next[StreamToDevice]
	out := map[string]any{"next_batch": strconv.FormatInt(to, 10), "events": []json.RawMessage{}}
	st := b.stream(StreamToDevice)
	if st == nil {
		return out, false, nil // no to-device stream wired
	}
	var since int64
	if s := b.req.Extensions.ToDevice.Since; s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			since = 0 // not ours (another server's token): start over
		} else {
			since = v
		}
	}
	if since > to {
		// From the future (a restarted in-memory stream): nothing to send.
		out["next_batch"] = strconv.FormatInt(since, 10)
		return out, false, nil
	}
	req := &Request{Device: b.dev, Since: Token{StreamToDevice: since}}
	scratch := NewResponse()
	if fin, ok := st.(Finisher); ok && since > 0 {
		// The stream acknowledges what a since position covers in Finish.
		if err := fin.Finish(ctx, req, scratch); err != nil {
			return nil, false, err
		}
	}
	got, err := st.Fill(ctx, req, since, to, scratch)
	if err != nil {
		return nil, false, err
	}
	out["events"] = scratch.ToDevice.Events
	return out, got, nil
}

// e2ee is MSC3884: device list changes since the previous response, and the
// device's one-time key counts and unused fallback key types, from the
// device-list and to-device streams.
func (b *ssBuild) e2ee(ctx context.Context) (any, bool, error) {
	scratch := NewResponse()
	found := false
	if st := b.stream(StreamDeviceList); st != nil && b.prev != nil {
		from, to := b.from(StreamDeviceList), b.next[StreamDeviceList]
		if from < to {
			got, err := st.Fill(ctx, &Request{Device: b.dev, Since: b.prev.token}, from, to, scratch)
			if err != nil {
				return nil, false, err
			}
			found = got
		}
	}
	// Key counts: Finish of the key streams, with a since that acknowledges nothing.
	for _, name := range []StreamName{StreamToDevice, StreamDeviceList} {
		if fin, ok := b.stream(name).(Finisher); ok {
			if err := fin.Finish(ctx, &Request{Device: b.dev, Since: Token{}}, scratch); err != nil {
				return nil, false, err
			}
		}
	}
	changed, left := scratch.DeviceLists.Changed, scratch.DeviceLists.Left
	if changed == nil {
		changed = []id.UserID{}
	}
	if left == nil {
		left = []id.UserID{}
	}
	return map[string]any{
		"device_lists":                     map[string]any{"changed": changed, "left": left},
		"device_one_time_keys_count":       scratch.DeviceOneTimeKeysCount,
		"device_unused_fallback_key_types": scratch.DeviceUnusedFallback,
	}, found, nil
}

// accountData is MSC3959: global account data changed since the previous
// response (all of it on a first request), and per-room account data of the
// scoped rooms (all of it for rooms sent initially in this response).
func (b *ssBuild) accountData(ctx context.Context) (any, bool, error) {
	in := b.s.d.Inbox
	user := b.dev.UserID
	from, to := b.from(StreamAccountData), b.next[StreamAccountData]
	rooms := b.scopedRooms(b.req.Extensions.AccountData)
	needAll := b.prev == nil
	for _, r := range rooms {
		if b.initialRooms[r] {
			needAll = true
		}
	}
	lo := from
	if needAll {
		lo = 0
	}
	var entries []storage.AccountData
	if lo < to {
		var err error
		if entries, err = in.store.AccountDataBetween(ctx, user, lo, to); err != nil {
			return nil, false, err
		}
	}
	scoped := map[id.RoomID]bool{}
	for _, r := range rooms {
		scoped[r] = true
	}
	global := []json.RawMessage{}
	perRoom := map[id.RoomID][]json.RawMessage{}
	sawRules := false
	for _, e := range entries {
		content := e.Content
		if e.RoomID == "" {
			if e.Pos <= from && b.prev != nil {
				continue // fetched from 0 for an initial room only
			}
			if e.Type == "m.push_rules" {
				sawRules = true
				rs, err := in.ruleset(ctx, user)
				if err != nil {
					return nil, false, err
				}
				content, _ = json.Marshal(map[string]any{"global": rs})
			}
			ev, _ := json.Marshal(map[string]any{"type": e.Type, "content": content})
			global = append(global, ev)
			continue
		}
		if !scoped[e.RoomID] || e.Pos <= from && !b.initialRooms[e.RoomID] {
			continue
		}
		ev, _ := json.Marshal(map[string]any{"type": e.Type, "content": content})
		perRoom[e.RoomID] = append(perRoom[e.RoomID], ev)
	}
	if b.prev == nil && !sawRules {
		// Push rules are always part of the first response, as in /v3/sync.
		rs, err := in.ruleset(ctx, user)
		if err != nil {
			return nil, false, err
		}
		ev, _ := json.Marshal(map[string]any{"type": "m.push_rules", "content": map[string]any{"global": rs}})
		global = append(global, ev)
	}
	found := len(global) > 0 && b.prev != nil || len(perRoom) > 0
	return map[string]any{"global": global, "rooms": perRoom}, found, nil
}

// receipts is MSC3960: m.receipt events of the scoped rooms, with the
// receipts since the previous response (all of them for rooms sent
// initially). Private receipts are only the user's own.
func (b *ssBuild) receipts(ctx context.Context) (any, bool, error) {
	in := b.s.d.Inbox
	user := b.dev.UserID
	from, to := b.from(StreamReceipt), b.next[StreamReceipt]
	rooms := b.scopedRooms(b.req.Extensions.Receipts)
	var initial, incremental []id.RoomID
	for _, r := range rooms {
		if b.prev == nil || b.initialRooms[r] {
			initial = append(initial, r)
		} else {
			incremental = append(incremental, r)
		}
	}
	var all []storage.Receipt
	for _, part := range []struct {
		rooms []id.RoomID
		from  int64
	}{{initial, 0}, {incremental, from}} {
		if len(part.rooms) == 0 || part.from >= to {
			continue
		}
		rs, err := in.store.ReceiptsBetween(ctx, part.rooms, part.from, to)
		if err != nil {
			return nil, false, err
		}
		all = append(all, rs...)
	}
	type content = map[id.EventID]map[string]map[id.UserID]map[string]any
	byRoom := map[id.RoomID]content{}
	for _, rc := range all {
		if rc.Type == receiptReadPrivate && rc.UserID != user {
			continue
		}
		c := byRoom[rc.RoomID]
		if c == nil {
			c = content{}
			byRoom[rc.RoomID] = c
		}
		if c[rc.EventID] == nil {
			c[rc.EventID] = map[string]map[id.UserID]map[string]any{}
		}
		if c[rc.EventID][rc.Type] == nil {
			c[rc.EventID][rc.Type] = map[id.UserID]map[string]any{}
		}
		putReceipt(c[rc.EventID][rc.Type], rc)
	}
	out := map[id.RoomID]json.RawMessage{}
	for room, c := range byRoom {
		out[room], _ = json.Marshal(map[string]any{"type": "m.receipt", "content": c})
	}
	return map[string]any{"rooms": out}, len(out) > 0, nil
}

// typing is MSC3961: the m.typing event of each scoped room whose typing
// users changed since the previous response (rooms sent initially: whenever
// someone is typing).
func (b *ssBuild) typing(ctx context.Context) (any, bool, error) {
	ts := b.s.d.Inbox.typing
	from, to := b.from(StreamTyping), b.next[StreamTyping]
	out := map[id.RoomID]json.RawMessage{}
	for _, room := range b.scopedRooms(b.req.Extensions.Typing) {
		users, changed := ts.snapshot(room, b.initialRooms[room] || from == 0, from, to)
		if !changed {
			continue
		}
		if users == nil {
			users = []id.UserID{}
		}
		out[room], _ = json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}})
	}
	return map[string]any{"rooms": out}, len(out) > 0, nil
}
