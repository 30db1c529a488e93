package keyserver

import (
	"context"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// RemoteKeys is a remote server's answer to a key query.
type RemoteKeys struct {
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage
	MasterKeys      map[id.UserID]json.RawMessage
	SelfSigningKeys map[id.UserID]json.RawMessage
}

// Federation is what the key server asks of other servers: key queries and
// claims (federation user/keys/query and user/keys/claim) and to-device
// messages (m.direct_to_device EDUs). The composition root adapts the
// federation component to it.
type Federation interface {
	QueryKeys(ctx context.Context, server string, query map[id.UserID][]id.DeviceID) (*RemoteKeys, error)
	ClaimKeys(ctx context.Context, server string, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error)
	SendToDevice(server string, sender id.UserID, evType, messageID string, messages map[id.UserID]map[string]json.RawMessage)
}

// SetFederation connects the key server to other servers; call it before serving.
func (s *Server) SetFederation(f Federation) { s.fed = f }

// ReceiveToDevice stores to-device messages that sender (a user of origin)
// sent to local users over federation. messageID makes a retry a no-op.
func (s *Server) ReceiveToDevice(ctx context.Context, origin string, sender id.UserID, evType, messageID string, messages map[id.UserID]map[string]json.RawMessage) error {
	if sender.Homeserver() != origin {
		return fmt.Errorf("sender %s is not from %s", sender, origin)
	}
	var msgs []storage.ToDeviceMessage
	var targets []id.UserID
	for user, devices := range messages {
		if !s.isLocal(user) {
			continue
		}
		all, err := s.store.ListDevices(ctx, user)
		if err != nil {
			return err
		}
		for device, content := range devices {
			if len(content) == 0 || content[0] != '{' {
				continue
			}
			for _, d := range all {
				if device == "*" || id.DeviceID(device) == d.DeviceID {
					msgs = append(msgs, storage.ToDeviceMessage{UserID: user, DeviceID: d.DeviceID, Type: evType, Content: content})
				}
			}
		}
		targets = append(targets, user)
	}
	_, dup, err := s.store.SendToDevice(ctx, sender, "", "fed:"+messageID, msgs)
	if err != nil {
		return err
	}
	if !dup && s.notifier != nil {
		s.notifier.WakeUsers(targets...)
	}
	return nil
}

// remoteByServer groups the non-local users of a query by server.
func remoteByServer[T any](s *Server, q map[id.UserID]T) map[string]map[id.UserID]T {
	out := map[string]map[id.UserID]T{}
	for u, v := range q {
		if _, _, err := u.Parse(); err != nil || s.isLocal(u) {
			continue
		}
		if out[u.Homeserver()] == nil {
			out[u.Homeserver()] = map[id.UserID]T{}
		}
		out[u.Homeserver()][u] = v
	}
	return out
}
