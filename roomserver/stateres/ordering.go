package stateres

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// infinitePower is the power level of room creators in room versions with
// privileged creators (v12): higher than any level a power levels event can
// grant (those are limited to 2^53-1 by canonical JSON).
const infinitePower = math.MaxInt64

// authEventOfType returns the loaded auth event of node i with the given type
// and an empty state key.
func (g *graph) authEventOfType(i int32, evType string) (int32, bool) {
	for _, a := range g.authOf(i) {
		ev := g.nodes[a].ev
		if ev.Type == evType && ev.StateKey != nil && *ev.StateKey == "" {
			return a, true
		}
	}
	return 0, false
}

// senderPower returns the power level of node i's sender "when looking at its
// auth_events", for the reverse topological power ordering. Where the spec is
// silent it follows Synapse: without a power levels auth event the room
// creator has 100 and everyone else 0; in room versions with privileged
// creators (v12) the creators' power is infinite.
func (g *graph) senderPower(i int32) int64 {
	n := &g.nodes[i]
	if n.powerDone {
		return n.power
	}
	n.powerDone = true
	sender := n.ev.Sender
	if g.version.PrivilegedRoomCreators() {
		if create := g.createEvent(n.ev.RoomID); create != nil && isCreator(g.version, create, sender) {
			n.power = infinitePower
			return n.power
		}
	}
	if pl, ok := g.authEventOfType(i, event.StatePowerLevels.Type); ok {
		n.power = userLevel(g.version, g.nodes[pl].ev.Content, sender)
		return n.power
	}
	if !g.version.PrivilegedRoomCreators() {
		if c, ok := g.authEventOfType(i, event.StateCreate.Type); ok && isCreator(g.version, g.nodes[c].ev, sender) {
			n.power = 100
		}
	}
	return n.power
}

// createEvent returns the m.room.create event of a room whose ID is derived
// from it (room version 12), loading it if needed.
func (g *graph) createEvent(roomID id.RoomID) *pdu.PDU {
	if len(roomID) < 2 {
		return nil
	}
	evs, _ := g.getEvents([]id.EventID{id.EventID("$" + roomID[1:])})
	if len(evs) == 1 {
		return evs[0]
	}
	return nil
}

// isCreator reports whether user is a creator of the room: the create event's
// sender (content.creator in versions that have it) and, in versions with
// privileged creators, its content.additional_creators.
func isCreator(version id.RoomVersion, create *pdu.PDU, user id.UserID) bool {
	var c struct {
		Creator            id.UserID `json:"creator"`
		AdditionalCreators []any     `json:"additional_creators"`
	}
	_ = json.Unmarshal(create.Content, &c)
	if version.CreatorInContent() {
		return c.Creator == user
	}
	if create.Sender == user {
		return true
	}
	if version.PrivilegedRoomCreators() {
		for _, ac := range c.AdditionalCreators {
			if s, ok := ac.(string); ok && id.UserID(s) == user {
				return true
			}
		}
	}
	return false
}

// userLevel reads a user's level from power levels content: users[user], else
// users_default, else 0. Values are parsed as leniently as the room version's
// auth rules allow (strings are accepted before room version 10); an
// unparsable value counts as 0.
func userLevel(version id.RoomVersion, content []byte, user id.UserID) int64 {
	var c struct {
		Users        map[string]json.RawMessage `json:"users"`
		UsersDefault json.RawMessage            `json:"users_default"`
	}
	if json.Unmarshal(content, &c) != nil {
		return 0
	}
	if raw, ok := c.Users[user.String()]; ok {
		if v, ok := parseLevel(version, raw); ok {
			return v
		}
		return 0
	}
	if v, ok := parseLevel(version, c.UsersDefault); ok {
		return v
	}
	return 0
}

func parseLevel(version id.RoomVersion, raw json.RawMessage) (int64, bool) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if len(raw) == 0 || d.Decode(&v) != nil {
		return 0, false
	}
	switch val := v.(type) {
	case json.Number:
		if n, err := val.Int64(); err == nil {
			return n, true
		}
		if f, err := val.Float64(); err == nil && !version.ValidatePowerLevelInts() {
			return int64(f), true
		}
	case string:
		if !version.ValidatePowerLevelInts() {
			if n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil {
				return n, true
			}
		}
	case bool:
		if !version.ValidatePowerLevelInts() {
			if val {
				return 1, true
			}
			return 0, true
		}
	}
	return 0, false
}

// powerLess is the comparison of the reverse topological power ordering: x < y
// if x's sender has greater power, then by smaller origin_server_ts, then by
// smaller event ID.
func (g *graph) powerLess(x, y int32) bool {
	px, py := g.senderPower(x), g.senderPower(y)
	if px != py {
		return px > py
	}
	ex, ey := g.nodes[x].ev, g.nodes[y].ev
	if ex.OriginServerTS != ey.OriginServerTS {
		return ex.OriginServerTS < ey.OriginServerTS
	}
	return g.nodes[x].id < g.nodes[y].id
}

// candidates is the heap of Kahn's algorithm, smallest event first.
type candidates struct {
	g     *graph
	items []int32
}

func (c *candidates) Len() int           { return len(c.items) }
func (c *candidates) Less(a, b int) bool { return c.g.powerLess(c.items[a], c.items[b]) }
func (c *candidates) Swap(a, b int)      { c.items[a], c.items[b] = c.items[b], c.items[a] }
func (c *candidates) Push(x any)         { c.items = append(c.items, x.(int32)) }
func (c *candidates) Pop() any {
	x := c.items[len(c.items)-1]
	c.items = c.items[:len(c.items)-1]
	return x
}

// reverseTopologicalPowerOrder sorts events into the lexicographically
// smallest topological order of the auth DAG restricted to events (auth events
// first), using Kahn's algorithm and picking the smallest candidate under
// powerLess at each step.
func (g *graph) reverseTopologicalPowerOrder(events []int32) ([]int32, error) {
	in := newNodeSet(len(g.nodes))
	for _, i := range events {
		in.add(i)
	}
	pending := make(map[int32]int, len(events)) // auth ancestors in the set not yet output
	children := make(map[int32][]int32)
	h := &candidates{g: g}
	below := g.nearestMembersBelow(in)
	for _, i := range events {
		var parents []int32
		for _, a := range g.authOf(i) {
			if in.has(a) {
				parents = append(parents, a)
			} else {
				parents = append(parents, below(a)...)
			}
		}
		slices.Sort(parents)
		for _, a := range slices.Compact(parents) {
			pending[i]++
			children[a] = append(children[a], i)
		}
		if pending[i] == 0 {
			h.items = append(h.items, i)
		}
	}
	heap.Init(h)
	out := make([]int32, 0, len(events))
	for h.Len() > 0 {
		i := heap.Pop(h).(int32)
		out = append(out, i)
		for _, c := range children[i] {
			pending[c]--
			if pending[c] == 0 {
				heap.Push(h, c)
			}
		}
	}
	if len(out) != len(events) {
		// Only possible with an auth_events cycle, which reference-hash event
		// IDs rule out; keep the result deterministic anyway.
		var rest []int32
		for _, i := range events {
			if pending[i] > 0 {
				rest = append(rest, i)
			}
		}
		slices.SortFunc(rest, func(a, b int32) int {
			if g.powerLess(a, b) {
				return -1
			}
			return 1
		})
		out = append(out, rest...)
	}
	return out, g.err
}

// nearestMembersBelow returns a function giving, for a node outside set, the
// members of set reachable from it through auth paths whose other nodes are
// all outside set. The topological order must respect ancestry through such
// paths too: step 1 takes auth chain events of power events that may be
// reached only through events outside the full conflicted set.
func (g *graph) nearestMembersBelow(set nodeSet) func(int32) []int32 {
	memo := make(map[int32][]int32)
	var below func(int32) []int32
	below = func(j int32) []int32 {
		if v, ok := memo[j]; ok {
			return v
		}
		memo[j] = nil // also guards against auth cycles
		var out []int32
		for _, a := range g.authOf(j) {
			if set.has(a) {
				out = append(out, a)
			} else {
				out = append(out, below(a)...)
			}
		}
		if len(out) > 1 {
			slices.Sort(out)
			out = slices.Compact(out)
		}
		memo[j] = out
		return out
	}
	return below
}

// mainlineOrder sorts events by the mainline ordering based on the power
// levels event powerLevels (which may be empty): events whose power levels
// ancestry meets the mainline at an older point come first, then by
// origin_server_ts, then by event ID.
func (g *graph) mainlineOrder(events []int32, powerLevels id.EventID) ([]int32, error) {
	// position maps a power levels event to its mainline position: P0 (the
	// resolved power levels) is 0, its power levels auth event 1, and so on.
	position := make(map[int32]int)
	if powerLevels != "" {
		if err := g.loadClosure([]id.EventID{powerLevels}); err != nil {
			return nil, err
		}
	}
	if p, ok := g.idx[powerLevels]; ok && p >= 0 && g.nodes[p].ev != nil {
		for i := 0; ; i++ {
			if _, dup := position[p]; dup {
				break // cycle guard
			}
			position[p] = i
			next, ok := g.authEventOfType(p, event.StatePowerLevels.Type)
			if !ok {
				break
			}
			p = next
		}
	}
	const infinity = math.MaxInt
	// memo caches the mainline position reached from a power levels event
	// (including itself), so that shared ancestry is walked once.
	memo := make(map[int32]int)
	var from func(p int32) int
	from = func(p int32) int {
		var walked []int32
		result := infinity
		for {
			if pos, ok := position[p]; ok {
				result = pos
				break
			}
			if pos, ok := memo[p]; ok {
				result = pos
				break
			}
			if slices.Contains(walked, p) {
				break
			}
			walked = append(walked, p)
			next, ok := g.authEventOfType(p, event.StatePowerLevels.Type)
			if !ok {
				break
			}
			p = next
		}
		for _, w := range walked {
			memo[w] = result
		}
		return result
	}
	pos := make(map[int32]int, len(events))
	for _, e := range events {
		pos[e] = infinity
		if p, ok := g.authEventOfType(e, event.StatePowerLevels.Type); ok {
			pos[e] = from(p)
		}
	}
	out := slices.Clone(events)
	slices.SortFunc(out, func(x, y int32) int {
		if c := cmp.Compare(pos[y], pos[x]); c != 0 {
			return c // greater position (older mainline point) first
		}
		ex, ey := g.nodes[x].ev, g.nodes[y].ev
		if c := cmp.Compare(ex.OriginServerTS, ey.OriginServerTS); c != 0 {
			return c
		}
		return cmp.Compare(g.nodes[x].id, g.nodes[y].id)
	})
	return out, nil
}
