package syncapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// ruleset builds the user's effective ruleset: the predefined rules with the
// user's changes to them, and the user's own rules. The user's rules of a
// kind come before the predefined ones of that kind, except .m.rule.master
// which stays first (as Synapse orders them).
func (in *Inbox) ruleset(ctx context.Context, user id.UserID) (*Ruleset, error) {
	stored, err := in.store.PushRules(ctx, user)
	if err != nil {
		return nil, err
	}
	return buildRuleset(user, stored), nil
}

func buildRuleset(user id.UserID, stored []storage.PushRule) *Ruleset {
	defs := defaultRuleset(user)
	own := map[string][]*PushRule{}
	for _, sr := range stored {
		if sr.Default {
			if r := findRule(defs, sr.Kind, sr.RuleID); r != nil {
				if sr.Enabled != nil {
					r.Enabled = *sr.Enabled
				}
				if sr.Actions != nil {
					var acts []json.RawMessage
					if json.Unmarshal(sr.Actions, &acts) == nil {
						r.Actions = acts
					}
				}
			}
			continue
		}
		r := &PushRule{RuleID: sr.RuleID, Enabled: sr.Enabled == nil || *sr.Enabled, Pattern: sr.Pattern, Actions: []json.RawMessage{}}
		_ = json.Unmarshal(sr.Actions, &r.Actions)
		if sr.Conditions != nil {
			r.Conditions = []json.RawMessage{}
			_ = json.Unmarshal(sr.Conditions, &r.Conditions)
		}
		own[sr.Kind] = append(own[sr.Kind], r)
	}
	out := &Ruleset{}
	for _, k := range pushKinds {
		list := out.kind(k)
		d := *defs.kind(k)
		*list = []*PushRule{}
		if k == "override" {
			*list = append(*list, d[0])
			d = d[1:]
		}
		*list = append(*list, own[k]...)
		*list = append(*list, d...)
	}
	return out
}

func findRule(rs *Ruleset, kind, ruleID string) *PushRule {
	list := rs.kind(kind)
	if list == nil {
		return nil
	}
	for _, r := range *list {
		if r.RuleID == ruleID {
			return r
		}
	}
	return nil
}

// getPushRules handles GET /pushrules/.
func (in *Inbox) getPushRules(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	rs, err := in.ruleset(r.Context(), dev.UserID)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"global": rs})
}

// getPushRulesGlobal handles GET /pushrules/global/.
func (in *Inbox) getPushRulesGlobal(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	rs, err := in.ruleset(r.Context(), dev.UserID)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, rs)
}

// ruleRef is a parsed /pushrules/global/{kind}/{ruleId}[/{attr}] path.
type ruleRef struct{ kind, ruleID, attr string }

type ruleRefKey struct{}

// rulePath returns the kind and rule ID that pushRulesPath parsed.
func rulePath(r *http.Request) (string, string, error) {
	ref, _ := r.Context().Value(ruleRefKey{}).(ruleRef)
	return ref.kind, ref.ruleID, nil
}

// unrecognizedRule is Synapse's answer to a malformed push rules path: 400 M_UNRECOGNIZED.
func unrecognizedRule(format string, a ...any) error {
	return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnrecognized, format, a...)
}

// pushRulesPath dispatches everything under /pushrules/: the scope (only
// "global"), the kind, the rule ID and the attribute, with a trailing slash
// asking for a whole scope or kind. Malformed paths are 400 M_UNRECOGNIZED.
func (in *Inbox) pushRulesPath(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	raw := mux.Vars(r)["path"]
	if raw == "" {
		if r.Method != http.MethodGet {
			return unrecognizedRule("a push rule path needs a scope")
		}
		return in.getPushRules(w, r, dev)
	}
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		v, err := url.PathUnescape(p)
		if err != nil {
			return unrecognizedRule("malformed push rule path")
		}
		parts[i] = v
	}
	if parts[0] != "global" {
		return unrecognizedRule("unknown push rule scope %q", parts[0])
	}
	if len(parts) == 1 {
		return unrecognizedRule("a scope must end with a slash")
	}
	if len(parts) == 2 && parts[1] == "" {
		if r.Method != http.MethodGet {
			return unrecognizedRule("a push rule path needs a kind")
		}
		return in.getPushRulesGlobal(w, r, dev)
	}
	kind := parts[1]
	if !slices.Contains(pushKinds, kind) {
		if r.Method == http.MethodGet && len(parts) == 3 && parts[2] != "" {
			// Looking up one rule of a kind this server lacks (a newer one,
			// such as MSC4306's postcontent): there is no such rule.
			return httputil.NotFound("push rule not found")
		}
		return unrecognizedRule("unknown push rule kind %q", kind)
	}
	if len(parts) == 2 {
		return unrecognizedRule("a kind must end with a slash")
	}
	if len(parts) == 3 && parts[2] == "" {
		if r.Method != http.MethodGet {
			return unrecognizedRule("a push rule path needs a rule ID")
		}
		rs, err := in.ruleset(r.Context(), dev.UserID)
		if err != nil {
			return err
		}
		return httputil.WriteJSON(w, http.StatusOK, *rs.kind(kind))
	}
	ref := ruleRef{kind: kind, ruleID: parts[2]}
	if len(parts) > 4 || ref.ruleID == "" {
		return unrecognizedRule("malformed push rule path")
	}
	if len(parts) == 4 {
		ref.attr = parts[3]
		if ref.attr != "enabled" && ref.attr != "actions" {
			return unrecognizedRule("unknown push rule attribute %q", ref.attr)
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), ruleRefKey{}, ref))
	switch {
	case ref.attr == "" && r.Method == http.MethodGet:
		return in.getPushRule(w, r, dev)
	case ref.attr == "" && r.Method == http.MethodPut:
		return in.putPushRule(w, r, dev)
	case ref.attr == "" && r.Method == http.MethodDelete:
		return in.deletePushRule(w, r, dev)
	case r.Method == http.MethodGet:
		return in.getPushRuleAttr(w, r, dev)
	case r.Method == http.MethodPut:
		return in.putPushRuleAttr(w, r, dev)
	}
	return unrecognizedRule("unsupported method for a push rule attribute")
}

func (in *Inbox) lookupRule(r *http.Request, dev *authn.Device) (*PushRule, error) {
	kind, ruleID, err := rulePath(r)
	if err != nil {
		return nil, err
	}
	rs, err := in.ruleset(r.Context(), dev.UserID)
	if err != nil {
		return nil, err
	}
	rule := findRule(rs, kind, ruleID)
	if rule == nil {
		return nil, httputil.NotFound("push rule not found")
	}
	return rule, nil
}

// getPushRule handles GET /pushrules/global/{kind}/{ruleId}.
func (in *Inbox) getPushRule(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	rule, err := in.lookupRule(r, dev)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, rule)
}

// getPushRuleAttr handles GET /pushrules/global/{kind}/{ruleId}/{enabled|actions}.
func (in *Inbox) getPushRuleAttr(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	rule, err := in.lookupRule(r, dev)
	if err != nil {
		return err
	}
	if ref, _ := r.Context().Value(ruleRefKey{}).(ruleRef); ref.attr == "enabled" {
		return httputil.WriteJSON(w, http.StatusOK, map[string]bool{"enabled": rule.Enabled})
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"actions": rule.Actions})
}

// validateActions checks a push rule's actions.
func validateActions(acts []json.RawMessage) error {
	for _, a := range acts {
		a = bytes.TrimSpace(a)
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return httputil.BadJSON("unknown action %q", s)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(a, &obj) != nil {
			return httputil.BadJSON("actions must be strings or objects")
		}
		var tweak string
		if json.Unmarshal(obj["set_tweak"], &tweak) != nil || tweak == "" {
			return httputil.BadJSON("action objects must have a set_tweak string")
		}
	}
	return nil
}

func validateConditions(conds []json.RawMessage) error {
	for _, c := range conds {
		var obj struct {
			Kind *string `json:"kind"`
		}
		if json.Unmarshal(c, &obj) != nil || obj.Kind == nil || *obj.Kind == "" {
			return httputil.BadJSON("every condition must be an object with a kind")
		}
	}
	return nil
}

// putPushRule handles PUT /pushrules/global/{kind}/{ruleId}.
func (in *Inbox) putPushRule(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	kind, ruleID, err := rulePath(r)
	if err != nil {
		return err
	}
	if ruleID == "" || strings.HasPrefix(ruleID, ".") || strings.ContainsAny(ruleID, `/\`) {
		return httputil.InvalidParam("rule IDs must not start with '.' or contain '/' or '\\'")
	}
	var body struct {
		Actions    *[]json.RawMessage `json:"actions"`
		Conditions *[]json.RawMessage `json:"conditions"`
		Pattern    *string            `json:"pattern"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	if body.Actions == nil {
		return httputil.BadJSON("actions is required")
	}
	if err := validateActions(*body.Actions); err != nil {
		return err
	}
	rule := storage.PushRule{Kind: kind, RuleID: ruleID}
	rule.Actions, _ = json.Marshal(*body.Actions)
	switch kind {
	case "override", "underride":
		conds := []json.RawMessage{}
		if body.Conditions != nil {
			conds = *body.Conditions
		}
		if err := validateConditions(conds); err != nil {
			return err
		}
		rule.Conditions, _ = json.Marshal(conds)
	case "content":
		if body.Pattern == nil {
			return httputil.BadJSON("content rules need a pattern")
		}
		rule.Pattern = body.Pattern
	}
	q := r.URL.Query()
	before, after := q.Get("before"), q.Get("after")
	err = in.store.UpdatePushRules(r.Context(), dev.UserID, func(rules []storage.PushRule) ([]storage.PushRule, error) {
		own, others := splitKind(rules, kind)
		pos := -1
		for i, x := range own {
			if x.RuleID == ruleID {
				pos = i
				rule.Enabled = x.Enabled // an update keeps the enabled state
				own = append(own[:i], own[i+1:]...)
				break
			}
		}
		anchor, offset := before, 0
		if anchor == "" && after != "" {
			anchor, offset = after, 1
		}
		switch {
		case anchor != "":
			idx := -1
			for i, x := range own {
				if x.RuleID == anchor {
					idx = i
				}
			}
			if idx < 0 {
				return nil, httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "before/after rule not found: %s", anchor)
			}
			pos = idx + offset
		case pos < 0:
			pos = 0 // a new rule is the most important of its kind
		}
		own = append(own[:pos], append([]storage.PushRule{rule}, own[pos:]...)...)
		return append(others, renumber(own)...), nil
	})
	in.forgetRules(dev.UserID)
	if err != nil {
		return err
	}
	in.notifier.WakeUsers(dev.UserID)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// splitKind returns the user-defined rules of kind (in priority order) and every other stored rule.
func splitKind(rules []storage.PushRule, kind string) (own, others []storage.PushRule) {
	for _, r := range rules {
		if r.Kind == kind && !r.Default {
			own = append(own, r)
		} else {
			others = append(others, r)
		}
	}
	return own, others
}

func renumber(rules []storage.PushRule) []storage.PushRule {
	for i := range rules {
		rules[i].Priority = int64(i)
	}
	return rules
}

// deletePushRule handles DELETE /pushrules/global/{kind}/{ruleId}.
func (in *Inbox) deletePushRule(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	kind, ruleID, err := rulePath(r)
	if err != nil {
		return err
	}
	if strings.HasPrefix(ruleID, ".") {
		return httputil.NotFound("server-default rules cannot be deleted")
	}
	err = in.store.UpdatePushRules(r.Context(), dev.UserID, func(rules []storage.PushRule) ([]storage.PushRule, error) {
		own, others := splitKind(rules, kind)
		for i, x := range own {
			if x.RuleID == ruleID {
				own = append(own[:i], own[i+1:]...)
				return append(others, renumber(own)...), nil
			}
		}
		return nil, httputil.NotFound("push rule not found")
	})
	in.forgetRules(dev.UserID)
	if err != nil {
		return err
	}
	in.notifier.WakeUsers(dev.UserID)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// putPushRuleAttr handles PUT /pushrules/global/{kind}/{ruleId}/{enabled|actions}.
func (in *Inbox) putPushRuleAttr(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	kind, ruleID, err := rulePath(r)
	if err != nil {
		return err
	}
	ref, _ := r.Context().Value(ruleRefKey{}).(ruleRef)
	attr := ref.attr
	var body struct {
		Enabled *bool              `json:"enabled"`
		Actions *[]json.RawMessage `json:"actions"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	var actions json.RawMessage
	switch {
	case attr == "enabled" && body.Enabled == nil:
		return httputil.BadJSON("enabled is required")
	case attr == "actions" && body.Actions == nil:
		return httputil.BadJSON("actions is required")
	case attr == "actions":
		if err := validateActions(*body.Actions); err != nil {
			return err
		}
		actions, _ = json.Marshal(*body.Actions)
	}
	isDefault := strings.HasPrefix(ruleID, ".")
	if isDefault && findRule(defaultRuleset(dev.UserID), kind, ruleID) == nil {
		return httputil.NotFound("push rule not found")
	}
	err = in.store.UpdatePushRules(r.Context(), dev.UserID, func(rules []storage.PushRule) ([]storage.PushRule, error) {
		idx := -1
		for i, x := range rules {
			if x.Kind == kind && x.RuleID == ruleID {
				idx = i
			}
		}
		if idx < 0 {
			if !isDefault {
				return nil, httputil.NotFound("push rule not found")
			}
			rules = append(rules, storage.PushRule{Kind: kind, RuleID: ruleID, Default: true})
			idx = len(rules) - 1
		}
		if attr == "enabled" {
			rules[idx].Enabled = body.Enabled
		} else {
			rules[idx].Actions = actions
		}
		return rules, nil
	})
	in.forgetRules(dev.UserID)
	if err != nil {
		return err
	}
	in.notifier.WakeUsers(dev.UserID)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}
