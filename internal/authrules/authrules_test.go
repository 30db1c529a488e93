package authrules

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

func TestThirdPartyInviteSigned(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	sign := func(key ed25519.PrivateKey, obj map[string]any) json.RawMessage {
		b, _ := canonicaljson.Marshal(obj)
		out := map[string]any{}
		for k, v := range obj {
			out[k] = v
		}
		out["signatures"] = map[string]any{"is.test": map[string]any{"ed25519:0": base64.RawStdEncoding.EncodeToString(ed25519.Sign(key, b))}}
		raw, _ := json.Marshal(out)
		return raw
	}
	sk := func(s string) *string { return &s }
	signedObj := map[string]any{"mxid": "@carol:hs.test", "sender": "@alice:hs.test", "token": "tok"}
	for name, tc := range map[string]struct {
		keyField string
		signer   ed25519.PrivateKey
		tpiFrom  id.UserID
		token    string
		want     bool
	}{
		"url-safe key in public_keys": {keyField: "public_keys", signer: priv, tpiFrom: "@alice:hs.test", token: "tok", want: true},
		"standard key in public_key":  {keyField: "public_key", signer: priv, tpiFrom: "@alice:hs.test", token: "tok", want: true},
		"signed by another key":       {keyField: "public_keys", signer: otherPriv, tpiFrom: "@alice:hs.test", token: "tok"},
		"invite from another sender":  {keyField: "public_keys", signer: priv, tpiFrom: "@mallory:hs.test", token: "tok"},
		"no invite with the token":    {keyField: "public_keys", signer: priv, tpiFrom: "@alice:hs.test", token: "other"},
	} {
		t.Run(name, func(t *testing.T) {
			content := map[string]any{"display_name": "c...", "public_key": base64.RawStdEncoding.EncodeToString(pub)}
			if tc.keyField == "public_keys" {
				content = map[string]any{"public_keys": []any{map[string]any{"public_key": base64.RawURLEncoding.EncodeToString(pub), "key_validity_url": "https://is.test/v"}}}
			}
			c, _ := json.Marshal(content)
			tpi := &pdu.PDU{Type: "m.room.third_party_invite", StateKey: sk(tc.token), Sender: tc.tpiFrom, Content: c}
			mc, _ := json.Marshal(map[string]any{"membership": "invite", "third_party_invite": map[string]any{"display_name": "c...", "signed": sign(tc.signer, signedObj)}})
			member := &pdu.PDU{Type: "m.room.member", StateKey: sk("@carol:hs.test"), Sender: "@alice:hs.test", Content: mc}
			if got := ThirdPartyInviteSigned(member, []*pdu.PDU{tpi}); got != tc.want {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
}
