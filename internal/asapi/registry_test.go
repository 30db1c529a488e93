package asapi

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
)

func TestRegistryNamespaces(t *testing.T) {
	reg, err := NewRegistry([]config.AppService{
		{ID: "irc", URL: "http://127.0.0.1:1", ASToken: "a1", HSToken: "h1", SenderLocalpart: "ircbot", Protocols: []string{"irc"},
			Namespaces: config.ASNamespaces{
				Users:   []config.ASNamespace{{Regex: `@irc_.*:hs\.test`, Exclusive: true}, {Regex: `@_shared.*`, Exclusive: false}},
				Aliases: []config.ASNamespace{{Regex: `#irc_.*`, Exclusive: true}},
				Rooms:   []config.ASNamespace{{Regex: `!bridged.*`, Exclusive: false}},
			}},
		{ID: "quiet", ASToken: "a2", HSToken: "h2", SenderLocalpart: "quiet", Protocols: []string{"irc", "xmpp"},
			Namespaces: config.ASNamespaces{Users: []config.ASNamespace{{Regex: `@_shared.*`, Exclusive: false}}}},
	}, "hs.test")
	if err != nil {
		t.Fatal(err)
	}
	irc := reg.ByID("irc")
	if reg.ByToken("a1") != irc || reg.ByToken("a2") != reg.ByID("quiet") || reg.ByToken("h1") != nil || reg.ByToken("") != nil {
		t.Fatal("token lookup")
	}
	if irc.Sender != "@ircbot:hs.test" || !irc.IsInterestedInUser("@ircbot:hs.test") || !irc.IsInterestedInUser("@irc_bob:hs.test") {
		t.Fatal("sender and namespace interest")
	}
	for _, c := range []struct {
		user id.UserID
		want *Service
	}{
		{"@irc_bob:hs.test", irc},
		{"@ircbot:hs.test", irc},
		{"@irc_bob:hs.test.evil", nil}, // anchored at the end
		{"@x@irc_bob:hs.test", nil},    // and at the start
		{"@_shared1:hs.test", nil},     // not exclusive
		{"@alice:hs.test", nil},
	} {
		if got := reg.ExclusiveUser(c.user); got != c.want {
			t.Errorf("ExclusiveUser(%s) = %v", c.user, got)
		}
	}
	if reg.ExclusiveAlias("#irc_chan:hs.test") != irc || reg.ExclusiveAlias("#other:hs.test") != nil {
		t.Fatal("ExclusiveAlias")
	}
	if !irc.InRoomNamespace("!bridged123:hs.test") || irc.InRoomNamespace("!other:hs.test") {
		t.Fatal("InRoomNamespace")
	}
	// The service without a URL is never queried.
	if got := reg.UserQueryTargets("@_shared1:hs.test"); len(got) != 1 || got[0] != irc {
		t.Fatalf("UserQueryTargets = %v", got)
	}
	if got := reg.Protocols(); len(got) != 1 || got[0] != "irc" {
		t.Fatalf("Protocols = %v", got)
	}
	var none *Registry
	if !none.Empty() || none.ByToken("a1") != nil || none.ExclusiveUser("@irc_bob:hs.test") != nil {
		t.Fatal("nil registry must find nothing")
	}
}
