// Package authrules applies the room auth rules: mautrix's eventauth, with
// the signature check of signed third-party invites done here.
//
// eventauth (mautrix v0.32.0) reads the third-party invite's public keys
// from the m.room.member event instead of the m.room.third_party_invite
// event and verifies an empty string instead of the signed object, so it
// rejects every valid third-party invite with ErrThirdPartyInviteNotSigned.
// That error is returned only after every other check of the rule (target
// not banned, mxid and token present, mxid is the state key, a matching
// m.room.third_party_invite from the same sender) has passed, so Authorize
// completes the rule's last step itself when it sees it.
package authrules

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"
)

// Authorize is eventauth.Authorize, with same arguments and results.
func Authorize(version id.RoomVersion, evt *pdu.PDU, authEvents []*pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
	err := eventauth.Authorize(version, evt, authEvents, getEvents, getKey)
	if !errors.Is(err, eventauth.ErrThirdPartyInviteNotSigned) {
		return err
	}
	if authEvents == nil {
		evs, gerr := getEvents(evt.AuthEvents)
		if gerr != nil {
			return err
		}
		authEvents = evs
	}
	if ThirdPartyInviteSigned(evt, authEvents) {
		return nil
	}
	return err
}

// ThirdPartyInviteSigned reports whether the signed object of an invite's
// content.third_party_invite carries a valid signature by one of the public
// keys of the m.room.third_party_invite event (among authEvents) that its
// token names (auth rules, m.room.member, invite, step 1.7).
func ThirdPartyInviteSigned(evt *pdu.PDU, authEvents []*pdu.PDU) bool {
	signed := gjson.GetBytes(evt.Content, "third_party_invite.signed")
	token := signed.Get("token").Str
	if !signed.IsObject() || token == "" {
		return false
	}
	var tpi *pdu.PDU
	for _, ae := range authEvents {
		if ae != nil && ae.Type == event.StateThirdPartyInvite.Type && ae.StateKey != nil && *ae.StateKey == token {
			tpi = ae
		}
	}
	if tpi == nil || tpi.Sender != evt.Sender {
		return false
	}
	for _, key := range PublicKeys(tpi.Content) {
		if key.Verifies(json.RawMessage(signed.Raw)) {
			return true
		}
	}
	return false
}

// PublicKey is an identity server key of an m.room.third_party_invite.
type PublicKey struct {
	// Key is the ed25519 key in standard unpadded base64.
	Key id.SigningKey
	// ValidityURL is where the identity server says whether the key is still valid ("" if not given).
	ValidityURL string
	// Raw is the key as the event gives it (the public_key query parameter of ValidityURL).
	Raw string
}

// Verifies reports whether signed (an object with signatures) carries a valid signature by the key.
func (k PublicKey) Verifies(signed json.RawMessage) bool {
	return signutil.VerifyJSONAny(k.Key, signed) == nil
}

// PublicKeys returns the keys of m.room.third_party_invite content:
// public_key (with key_validity_url) and each entry of public_keys.
func PublicKeys(content []byte) []PublicKey {
	var out []PublicKey
	add := func(v, url gjson.Result) {
		if v.Type != gjson.String || v.Str == "" {
			return
		}
		k := strings.TrimRight(strings.NewReplacer("-", "+", "_", "/").Replace(v.Str), "=")
		out = append(out, PublicKey{Key: id.SigningKey(k), ValidityURL: url.Str, Raw: v.Str})
	}
	add(gjson.GetBytes(content, "public_key"), gjson.GetBytes(content, "key_validity_url"))
	for _, k := range gjson.GetBytes(content, "public_keys").Array() {
		add(k.Get("public_key"), k.Get("key_validity_url"))
	}
	return out
}
