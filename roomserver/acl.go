package roomserver

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"

	"github.com/tidwall/gjson"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ServerAllowed applies the room's m.room.server_acl to server (the origin
// of a federation request): false when the ACL denies it. Rooms without an
// ACL, and unknown rooms, allow every server.
func (s *Server) ServerAllowed(ctx context.Context, roomID id.RoomID, server string) (bool, error) {
	ev, err := s.store.CurrentStateEvent(ctx, roomID, "m.room.server_acl", "")
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return aclAllows(gjson.GetBytes(ev.JSON, "content"), server), nil
}

// aclAllows implements the server ACL rules (client-server API, "Server Access Control Lists").
func aclAllows(content gjson.Result, server string) bool {
	host := server
	if h, _, err := net.SplitHostPort(server); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	allowIP := content.Get("allow_ip_literals")
	if net.ParseIP(host) != nil && allowIP.Exists() && allowIP.Type == gjson.False {
		return false
	}
	for _, g := range content.Get("deny").Array() {
		if g.Type == gjson.String && globMatch(g.Str, host) {
			return false
		}
	}
	for _, g := range content.Get("allow").Array() {
		if g.Type == gjson.String && globMatch(g.Str, host) {
			return true
		}
	}
	return false
}

// globMatch matches s against a glob with * and ? wildcards, case-insensitively.
func globMatch(glob, s string) bool {
	var b strings.Builder
	b.WriteString("(?i)^")
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(s)
}
