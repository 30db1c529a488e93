package syncapi

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// PushRule is a push rule as the client-server API shows it.
type PushRule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Actions    []json.RawMessage `json:"actions"`
	Conditions []json.RawMessage `json:"conditions,omitempty"`
	Pattern    *string           `json:"pattern,omitempty"`
}

// Ruleset is the global push ruleset of a user, kinds in evaluation order.
type Ruleset struct {
	Override  []*PushRule `json:"override"`
	Content   []*PushRule `json:"content"`
	Room      []*PushRule `json:"room"`
	Sender    []*PushRule `json:"sender"`
	Underride []*PushRule `json:"underride"`
}

// pushKinds are the rule kinds in evaluation order.
var pushKinds = []string{"override", "content", "room", "sender", "underride"}

// kind returns the list of rules of one kind.
func (rs *Ruleset) kind(k string) *[]*PushRule {
	switch k {
	case "override":
		return &rs.Override
	case "content":
		return &rs.Content
	case "room":
		return &rs.Room
	case "sender":
		return &rs.Sender
	case "underride":
		return &rs.Underride
	}
	return nil
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// Common action lists of the default rules.
var (
	actNotify          = []json.RawMessage{raw(`"notify"`)}
	actNotifySound     = []json.RawMessage{raw(`"notify"`), raw(`{"set_tweak":"sound","value":"default"}`)}
	actNotifyHighlight = []json.RawMessage{raw(`"notify"`), raw(`{"set_tweak":"highlight"}`)}
	actNotifySoundHigh = []json.RawMessage{raw(`"notify"`), raw(`{"set_tweak":"sound","value":"default"}`), raw(`{"set_tweak":"highlight"}`)}
	actNone            = []json.RawMessage{}
)

func eventMatch(key, pattern string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"kind": "event_match", "key": key, "pattern": pattern})
	return b
}

func defaultRule(ruleID string, actions []json.RawMessage, conds ...json.RawMessage) *PushRule {
	if conds == nil {
		conds = []json.RawMessage{}
	}
	return &PushRule{RuleID: ruleID, Default: true, Enabled: true, Actions: actions, Conditions: conds}
}

// prependOverride are default override rules placed before the user's own
// override rules; the other defaults of each kind come after the user's.
func defaultPrependOverride() []*PushRule {
	master := defaultRule(".m.rule.master", actNone)
	master.Enabled = false
	return []*PushRule{master}
}

// defaultRuleset returns the spec's predefined rules (client-server API,
// "Predefined Rules") for user, in the spec's order.
func defaultRuleset(user id.UserID) *Ruleset {
	userJSON, _ := json.Marshal(string(user))
	localpart := user.Localpart()
	override := append(defaultPrependOverride(),
		defaultRule(".m.rule.suppress_notices", actNone, eventMatch("content.msgtype", "m.notice")),
		defaultRule(".m.rule.invite_for_me", actNotifySound,
			eventMatch("type", "m.room.member"), eventMatch("content.membership", "invite"), eventMatch("state_key", string(user))),
		defaultRule(".m.rule.member_event", actNone, eventMatch("type", "m.room.member")),
		defaultRule(".m.rule.is_user_mention", actNotifySoundHigh,
			raw(`{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":`+string(userJSON)+`}`)),
		defaultRule(".m.rule.contains_display_name", actNotifySoundHigh, raw(`{"kind":"contains_display_name"}`)),
		defaultRule(".m.rule.is_room_mention", actNotifyHighlight,
			raw(`{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true}`),
			raw(`{"kind":"sender_notification_permission","key":"room"}`)),
		defaultRule(".m.rule.roomnotif", actNotifyHighlight,
			raw(`{"kind":"sender_notification_permission","key":"room"}`), eventMatch("content.body", "@room")),
		defaultRule(".m.rule.tombstone", actNotifyHighlight, eventMatch("type", "m.room.tombstone"), eventMatch("state_key", "")),
		defaultRule(".m.rule.reaction", actNone, eventMatch("type", "m.reaction")),
		defaultRule(".m.rule.room.server_acl", actNone, eventMatch("type", "m.room.server_acl"), eventMatch("state_key", "")),
		defaultRule(".m.rule.suppress_edits", actNone,
			raw(`{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}`)),
	)
	pattern := localpart
	return &Ruleset{
		Override: override,
		Content: []*PushRule{{RuleID: ".m.rule.contains_user_name", Default: true, Enabled: true,
			Actions: actNotifySoundHigh, Pattern: &pattern}},
		Room:   []*PushRule{},
		Sender: []*PushRule{},
		Underride: []*PushRule{
			defaultRule(".m.rule.call", []json.RawMessage{raw(`"notify"`), raw(`{"set_tweak":"sound","value":"ring"}`)},
				eventMatch("type", "m.call.invite")),
			defaultRule(".m.rule.encrypted_room_one_to_one", actNotifySound,
				raw(`{"kind":"room_member_count","is":"2"}`), eventMatch("type", "m.room.encrypted")),
			defaultRule(".m.rule.room_one_to_one", actNotifySound,
				raw(`{"kind":"room_member_count","is":"2"}`), eventMatch("type", "m.room.message")),
			defaultRule(".m.rule.message", actNotify, eventMatch("type", "m.room.message")),
			defaultRule(".m.rule.encrypted", actNotify, eventMatch("type", "m.room.encrypted")),
		},
	}
}
