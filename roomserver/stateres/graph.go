package stateres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// node is one event of the auth DAG. Nodes are addressed by their index in
// graph.nodes so that the traversals below can use slices instead of maps.
type node struct {
	id id.EventID
	ev *pdu.PDU // nil when the fetcher does not have the event

	expanded bool    // auth events have been queued for loading
	auth     []int32 // loaded auth events (valid once authDone)
	authDone bool

	membership string // content.membership of m.room.member events

	power     int64 // sender power level, for the reverse topological power ordering
	powerDone bool
}

// isPowerEvent reports whether n is a power event: m.room.power_levels,
// m.room.join_rules, or an m.room.member kick or ban (membership leave or ban
// with a sender other than the state key).
//
// The spec defines power events by type alone. Synapse additionally requires
// an empty state key for power levels and join rules (which only matters for
// events the auth rules ignore anyway) and counts m.room.create; we follow the
// spec's text.
func (n *node) isPowerEvent() bool {
	if n.ev == nil || n.ev.StateKey == nil {
		return false
	}
	switch n.ev.Type {
	case event.StatePowerLevels.Type, event.StateJoinRules.Type:
		return true
	case event.StateMember.Type:
		return (n.membership == string(event.MembershipLeave) || n.membership == string(event.MembershipBan)) &&
			*n.ev.StateKey != n.ev.Sender.String()
	}
	return false
}

// graph holds the events loaded during one resolution.
type graph struct {
	ctx     context.Context
	version id.RoomVersion
	fetch   FetchFunc
	getKey  pdu.GetKeyFunc

	idx   map[id.EventID]int32
	nodes []node

	// err records a fetch error raised inside a callback that cannot return
	// one (eventauth's getEvents), so that it is not mistaken for a rejection.
	err error
}

func newGraph(ctx context.Context, version id.RoomVersion, fetch FetchFunc, getKey pdu.GetKeyFunc) *graph {
	return &graph{ctx: ctx, version: version, fetch: fetch, getKey: getKey, idx: make(map[id.EventID]int32)}
}

// load makes sure every ID in ids has a node, fetching the unknown ones in a
// single call. It does not follow auth events.
func (g *graph) load(ids []id.EventID) error {
	var need []id.EventID
	for _, evID := range ids {
		if _, ok := g.idx[evID]; !ok {
			g.idx[evID] = -1 // placeholder: deduplicates ids
			need = append(need, evID)
		}
	}
	if len(need) == 0 {
		return nil
	}
	if err := g.ctx.Err(); err != nil {
		return err
	}
	evs, err := g.fetch(g.ctx, need)
	if err != nil {
		return fmt.Errorf("stateres: fetch events: %w", err)
	}
	got := make(map[id.EventID]*pdu.PDU, len(evs))
	for _, ev := range evs {
		if ev == nil {
			continue
		}
		evID := ev.InternalMeta.EventID
		if evID == "" {
			if evID, err = ev.GetEventID(g.version); err != nil {
				return fmt.Errorf("stateres: compute event ID: %w", err)
			}
		}
		got[evID] = ev
	}
	for _, evID := range need {
		g.idx[evID] = g.addNode(evID, got[evID])
	}
	return nil
}

func (g *graph) addNode(evID id.EventID, ev *pdu.PDU) int32 {
	n := node{id: evID, ev: ev}
	if ev != nil && ev.Type == event.StateMember.Type {
		var c struct {
			Membership string `json:"membership"`
		}
		if json.Unmarshal(ev.Content, &c) == nil {
			n.membership = c.Membership
		}
	}
	g.nodes = append(g.nodes, n)
	return int32(len(g.nodes) - 1)
}

// get returns the loaded event with the given ID, or nil.
func (g *graph) get(evID id.EventID) *pdu.PDU {
	if i, ok := g.idx[evID]; ok && i >= 0 {
		return g.nodes[i].ev
	}
	return nil
}

// loadClosure loads ids and, breadth first, all of their auth ancestors, with
// one fetch per level of the auth DAG.
func (g *graph) loadClosure(ids []id.EventID) error {
	frontier := ids
	for len(frontier) > 0 {
		if err := g.load(frontier); err != nil {
			return err
		}
		var next []id.EventID
		for _, evID := range frontier {
			n := &g.nodes[g.idx[evID]]
			if n.expanded || n.ev == nil {
				continue
			}
			n.expanded = true
			for _, a := range n.ev.AuthEvents {
				if i, ok := g.idx[a]; !ok || (i >= 0 && !g.nodes[i].expanded) {
					next = append(next, a)
				}
			}
		}
		frontier = next
	}
	return nil
}

// authOf returns the indices of n's auth events that are loaded. The closure
// of n must have been loaded.
func (g *graph) authOf(i int32) []int32 {
	n := &g.nodes[i]
	if !n.authDone {
		n.authDone = true
		if n.ev != nil {
			for _, a := range n.ev.AuthEvents {
				if j, ok := g.idx[a]; ok && j >= 0 && g.nodes[j].ev != nil && !slices.Contains(n.auth, j) {
					n.auth = append(n.auth, j)
				}
			}
		}
	}
	return n.auth
}

// present maps event IDs to node indices, leaving out events that could not be
// loaded.
func (g *graph) present(ids []id.EventID) []int32 {
	out := make([]int32, 0, len(ids))
	for _, evID := range ids {
		if i, ok := g.idx[evID]; ok && i >= 0 && g.nodes[i].ev != nil {
			out = append(out, i)
		}
	}
	return out
}

// nodeSet is a set of node indices.
type nodeSet struct{ in []bool }

func newNodeSet(n int) nodeSet { return nodeSet{in: make([]bool, n)} }

func (s nodeSet) add(i int32)      { s.in[i] = true }
func (s nodeSet) has(i int32) bool { return s.in[i] }

// sorted returns the members in index order.
func (s nodeSet) sorted() []int32 {
	var out []int32
	for i, ok := range s.in {
		if ok {
			out = append(out, int32(i))
		}
	}
	return out
}

// walk visits start and, depth first, their auth ancestors, skipping nodes for
// which skip returns true (and their ancestors reached only through them).
// visit is called once per visited node.
func (g *graph) walk(start []int32, seen nodeSet, skip func(int32) bool, visit func(int32)) {
	stack := slices.Clone(start)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen.has(i) || (skip != nil && skip(i)) {
			continue
		}
		seen.add(i)
		if visit != nil {
			visit(i)
		}
		stack = append(stack, g.authOf(i)...)
	}
}

// authDifference returns the auth difference of the state sets: the events
// that are in some but not all of the sets' full auth chains. Like Synapse, we
// count a state set's own events as part of its full auth chain.
//
// Everything reachable from the unconflicted state is in every chain, so it is
// marked once and each state set is then walked only from its conflicted
// events, stopping at the common part.
func (g *graph) authDifference(stateSets []StateMap, unconflicted StateMap) []int32 {
	common := newNodeSet(len(g.nodes))
	var uncIDs []id.EventID
	for _, evID := range unconflicted {
		uncIDs = append(uncIDs, evID)
	}
	g.walk(g.present(uncIDs), common, nil, nil)

	count := make([]int32, len(g.nodes))
	var reached []int32
	for _, set := range stateSets {
		var start []id.EventID
		for k, evID := range set {
			if unconflicted[k] != evID {
				start = append(start, evID)
			}
		}
		seen := newNodeSet(len(g.nodes))
		g.walk(g.present(start), seen, common.has, func(i int32) {
			if count[i] == 0 {
				reached = append(reached, i)
			}
			count[i]++
		})
	}
	var diff []int32
	for _, i := range reached {
		if int(count[i]) < len(stateSets) {
			diff = append(diff, i)
		}
	}
	slices.Sort(diff)
	return diff
}

// conflictedSubgraph returns the conflicted state subgraph (state resolution
// v2.1): every event on an auth_events path from one conflicted state event to
// another, endpoints included.
//
// An event x is on such a path iff x is a strict auth ancestor of some
// conflicted event and some conflicted event is an auth ancestor of x (or x
// itself). We mark the ancestors A of the conflicted events, then walk from the
// conflicted events inside A towards their descendants, staying inside A.
func (g *graph) conflictedSubgraph(conflicted []int32) []int32 {
	inA := newNodeSet(len(g.nodes))
	var parents []int32
	for _, c := range conflicted {
		parents = append(parents, g.authOf(c)...)
	}
	var members []int32
	g.walk(parents, inA, nil, func(i int32) { members = append(members, i) })

	children := make(map[int32][]int32)
	for _, i := range members {
		for _, p := range g.authOf(i) {
			children[p] = append(children[p], i)
		}
	}
	out := newNodeSet(len(g.nodes))
	var stack []int32
	for _, c := range conflicted {
		out.add(c)
		if inA.has(c) {
			stack = append(stack, c)
		}
	}
	onPath := newNodeSet(len(g.nodes))
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if onPath.has(i) {
			continue
		}
		onPath.add(i)
		out.add(i)
		stack = append(stack, children[i]...)
	}
	return out.sorted()
}

// powerEventsWithAuthChains returns the power events plus every event of the
// full conflicted set that is in the auth chain of one of them (step 1).
func (g *graph) powerEventsWithAuthChains(powerEvents []int32, full nodeSet) []int32 {
	picked := newNodeSet(len(g.nodes))
	for _, i := range powerEvents {
		picked.add(i)
	}
	seen := newNodeSet(len(g.nodes))
	var parents []int32
	for _, i := range powerEvents {
		parents = append(parents, g.authOf(i)...)
	}
	g.walk(parents, seen, nil, func(i int32) {
		if full.has(i) {
			picked.add(i)
		}
	})
	return picked.sorted()
}
