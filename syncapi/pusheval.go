package syncapi

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.mau.fi/util/glob"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/pushrules"
)

// Push rule evaluation in the order and with the semantics of mautrix's
// PushRuleset.GetActions, except that the patterns of event_match conditions
// and content rules are compiled once (mautrix compiles a glob or a regexp
// per rule per member per event). Conditions of other kinds, room and
// sender rules are delegated to mautrix.

// patternCache holds compiled patterns, keyed by pattern; a nil value is a
// pattern that does not compile (it never matches).
type patternCache struct {
	mu    sync.Mutex
	globs map[string]glob.Glob
	words map[string]*regexp.Regexp
}

// maxCachedPatterns bounds each map of a patternCache (emptied when full).
const maxCachedPatterns = 4096

var pushPatterns = &patternCache{globs: map[string]glob.Glob{}, words: map[string]*regexp.Regexp{}}

// glob returns the compiled event_match pattern (implicitly anchored as mautrix does).
func (c *patternCache) glob(pattern string) glob.Glob {
	c.mu.Lock()
	g, ok := c.globs[pattern]
	c.mu.Unlock()
	if ok {
		return g
	}
	g = glob.CompileWithImplicitContains(pattern)
	c.mu.Lock()
	if len(c.globs) >= maxCachedPatterns {
		clear(c.globs)
	}
	c.globs[pattern] = g
	c.mu.Unlock()
	return g
}

// word returns the compiled content rule pattern: case-insensitive, whole words.
func (c *patternCache) word(pattern string) *regexp.Regexp {
	c.mu.Lock()
	re, ok := c.words[pattern]
	c.mu.Unlock()
	if ok {
		return re
	}
	var buf strings.Builder
	buf.WriteString(`(?i)\b`)
	if glob.ToRegexPattern(pattern, &buf) == nil {
		buf.WriteString(`\b`)
		re, _ = regexp.Compile(buf.String())
	}
	c.mu.Lock()
	if len(c.words) >= maxCachedPatterns {
		clear(c.words)
	}
	c.words[pattern] = re
	c.mu.Unlock()
	return re
}

// pushActions returns the actions of the first rule of rs matching evt
// (pushrules.DefaultPushActions when none does).
func pushActions(rs *pushrules.PushRuleset, room pushrules.Room, evt *event.Event) pushrules.PushActionArray {
	if rule := matchingRule(rs, room, evt); rule != nil && rule.Actions != nil {
		return rule.Actions
	}
	return pushrules.DefaultPushActions
}

func matchingRule(rs *pushrules.PushRuleset, room pushrules.Room, evt *event.Event) *pushrules.PushRule {
	if rs == nil {
		return nil
	}
	for _, r := range rs.Override {
		if ruleMatches(r, room, evt) {
			return r
		}
	}
	for _, r := range rs.Content {
		if ruleMatches(r, room, evt) {
			return r
		}
	}
	if r := rs.Room.GetMatchingRule(room, evt); r != nil {
		return r
	}
	if r := rs.Sender.GetMatchingRule(room, evt); r != nil {
		return r
	}
	for _, r := range rs.Underride {
		if ruleMatches(r, room, evt) {
			return r
		}
	}
	return nil
}

// ruleMatches is pushrules.PushRule.Match with cached patterns.
func ruleMatches(rule *pushrules.PushRule, room pushrules.Room, evt *event.Event) bool {
	if rule == nil || !rule.Enabled {
		return false
	}
	switch rule.RuleID {
	case ".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif":
		// Legacy mention rules do not apply to events with m.mentions.
		if _, ok := evt.Content.Raw["m.mentions"]; ok {
			return false
		}
	}
	switch rule.Type {
	case pushrules.OverrideRule, pushrules.UnderrideRule:
		for _, cond := range rule.Conditions {
			if !condMatches(cond, room, evt) {
				return false
			}
		}
		return true
	case pushrules.ContentRule:
		body, ok := evt.Content.Raw["body"].(string)
		if !ok {
			return false
		}
		re := pushPatterns.word(rule.Pattern)
		return re != nil && re.MatchString(body)
	default:
		return rule.Match(room, evt)
	}
}

// condMatches is pushrules.PushCondition.Match with cached event_match globs.
func condMatches(cond *pushrules.PushCondition, room pushrules.Room, evt *event.Event) bool {
	switch cond.Kind {
	case pushrules.KindEventMatch:
		val, ok := condValue(cond.Key, evt)
		if !ok {
			return false
		}
		g := pushPatterns.glob(cond.Pattern)
		return g != nil && g.Match(condString(val))
	case pushrules.KindEventPropertyIs:
		val, ok := condValue(cond.Key, evt)
		return ok && jsonValueEquals(val, cond.Value)
	case pushrules.KindEventPropertyContains:
		val, ok := condValue(cond.Key, evt)
		if !ok {
			return false
		}
		arr, _ := val.([]any)
		for _, item := range arr {
			if jsonValueEquals(item, cond.Value) {
				return true
			}
		}
		return false
	}
	return cond.Match(room, evt)
}

// jsonValueEquals compares decoded JSON scalars: numbers by integer value
// (Matrix has no floats), other values with ==; values of types that cannot
// be compared (objects, arrays) are never equal.
func jsonValueEquals(a, b any) bool {
	if x, ok := asInt(a); ok {
		y, ok := asInt(b)
		return ok && x == y
	}
	switch a.(type) {
	case string, bool, nil:
		return a == b
	}
	return false
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// condValue finds a condition's key in evt (dotted path, with MSC3873 escapes).
func condValue(key string, evt *event.Event) (any, bool) {
	top, sub, _ := strings.Cut(key, ".")
	switch top {
	case "type":
		return evt.Type.Type, true
	case "sender":
		return evt.Sender.String(), true
	case "room_id":
		return evt.RoomID.String(), true
	case "state_key":
		if evt.StateKey == nil {
			return nil, false
		}
		return *evt.StateKey, true
	case "content":
		return nestedGet(evt.Content.Raw, splitEscaped(sub))
	}
	return nil, false
}

// splitEscaped splits s at unescaped dots, unescaping backslash escapes.
func splitEscaped(s string) []string {
	var tokens []string
	var tok []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '.':
			tokens = append(tokens, string(tok))
			tok = tok[:0]
		case s[i] == '\\' && i+1 < len(s):
			i++
			tok = append(tok, s[i])
		default:
			tok = append(tok, s[i])
		}
	}
	return append(tokens, string(tok))
}

// nestedGet looks path up in data; a missing part is retried joined with the
// next one by a dot (the unescaped legacy form, e.g. content.m.relates_to).
func nestedGet(data map[string]any, path []string) (any, bool) {
	val, ok := data[path[0]]
	if len(path) == 1 {
		return val, ok
	}
	if ok {
		if m, isMap := val.(map[string]any); isMap {
			if v, found := nestedGet(m, path[1:]); found {
				return v, true
			}
		}
	}
	path[1] = path[0] + "." + path[1]
	return nestedGet(data, path[1:])
}

// condString is the string an event_match pattern is matched against (MSC3862).
func condString(val any) string {
	switch v := val.(type) {
	case string:
		return v
	case nil:
		return "null"
	case float64:
		return strconv.FormatInt(int64(v), 10)
	default:
		return fmt.Sprint(val)
	}
}
