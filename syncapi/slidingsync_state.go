package syncapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Special values in required_state (unstable form).
const (
	stateWildcard = "*"
	stateLazy     = "$LAZY"
	stateMe       = "$ME"
)

// requiredState is one room config's required_state. It is given either as
// [[type, state_key], ...] (unstable endpoint: "*" is a wildcard,
// ["m.room.member", "$LAZY"] lazy-loads members, "$ME" is the user's ID) or
// as {"include": [...], "exclude": [...], "lazy_members": bool} (the MSC's
// newer form, where an omitted type or state_key matches everything).
type requiredState struct {
	include [][2]string
	exclude [][2]string
	lazy    bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (rs *requiredState) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var pairs [][]string
		if err := json.Unmarshal(b, &pairs); err != nil {
			return fmt.Errorf("required_state must be a list of [type, state_key] pairs")
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return fmt.Errorf("required_state entries must be [type, state_key] pairs")
			}
			if p[0] == event.StateMember.Type && p[1] == stateLazy {
				rs.lazy = true
				continue
			}
			rs.include = append(rs.include, [2]string{p[0], p[1]})
		}
		return nil
	}
	var obj struct {
		Include []struct {
			Type     *string `json:"type"`
			StateKey *string `json:"state_key"`
		} `json:"include"`
		Exclude []struct {
			Type     *string `json:"type"`
			StateKey *string `json:"state_key"`
		} `json:"exclude"`
		LazyMembers bool `json:"lazy_members"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("required_state must be a list of pairs or an object: %v", err)
	}
	elem := func(t, k *string) [2]string {
		e := [2]string{stateWildcard, stateWildcard}
		if t != nil {
			e[0] = *t
		}
		if k != nil {
			e[1] = *k
		}
		return e
	}
	for _, e := range obj.Include {
		rs.include = append(rs.include, elem(e.Type, e.StateKey))
	}
	for _, e := range obj.Exclude {
		rs.exclude = append(rs.exclude, elem(e.Type, e.StateKey))
	}
	rs.lazy = obj.LazyMembers
	return nil
}

// keyMatches reports whether pattern (a state key, "*" or "$ME") matches key.
func keyMatches(pattern, key string, user id.UserID) bool {
	return pattern == stateWildcard || pattern == key || pattern == stateMe && key == string(user)
}

// matches reports whether the config asks for the state event (typ, key).
// Entries naming typ explicitly take precedence over type wildcards, so
// [["*","*"],["m.room.member","$LAZY"]] lazy-loads members yet returns all
// other state.
func (rs *requiredState) matches(typ, key string, user id.UserID) bool {
	for _, e := range rs.exclude {
		if (e[0] == stateWildcard || e[0] == typ) && keyMatches(e[1], key, user) {
			return false
		}
	}
	explicit := rs.lazy && typ == event.StateMember.Type
	for _, e := range rs.include {
		if e[0] == typ {
			explicit = true
			if keyMatches(e[1], key, user) {
				return true
			}
		}
	}
	if explicit {
		return false
	}
	for _, e := range rs.include {
		if e[0] == stateWildcard && keyMatches(e[1], key, user) {
			return true
		}
	}
	return false
}

// roomConfig is the combination of every room config that applies to a
// room in one request: the largest timeline limit and the union of the
// required_state configs.
type roomConfig struct {
	limit int
	state []*requiredState
	lists []string
}

func (rc *roomConfig) add(c *ssRoomConfig, list string) {
	rc.limit = max(rc.limit, c.limit())
	rc.state = append(rc.state, &c.RequiredState)
	if list != "" && !slices.Contains(rc.lists, list) {
		rc.lists = append(rc.lists, list)
	}
}

func (rc *roomConfig) lazy() bool {
	return slices.ContainsFunc(rc.state, func(rs *requiredState) bool { return rs.lazy })
}

func (rc *roomConfig) wants(typ, key string, user id.UserID) bool {
	return slices.ContainsFunc(rc.state, func(rs *requiredState) bool { return rs.matches(typ, key, user) })
}

// stateKeys are canonical forms of the required_state configs.
func (rc *roomConfig) stateKeys() []string {
	var keys []string
	for _, rs := range rc.state {
		keys = append(keys, fmt.Sprintf("%v|%q|%q", rs.lazy, rs.include, rs.exclude))
	}
	return keys
}

// expandsState reports whether rc asks for required_state the client does
// not have of a room (sent): a config not sent yet.
func (rc *roomConfig) expandsState(sent *roomSent) bool {
	return slices.ContainsFunc(rc.stateKeys(), func(k string) bool { return !sent.stateCfgs[k] })
}

// sentConfigs returns the limit and configs to remember after sending a
// room: rc's own when sent in full; else what the client had, with the
// larger timeline limit when the timeline was expanded.
func (rc *roomConfig) sentConfigs(initial bool, prev *roomSent) (int, map[string]bool) {
	if !initial && prev != nil {
		return max(prev.limit, rc.limit), prev.stateCfgs
	}
	cfgs := map[string]bool{}
	for _, k := range rc.stateKeys() {
		cfgs[k] = true
	}
	return rc.limit, cfgs
}
