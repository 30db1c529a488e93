package keyserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"go.uber.org/zap"

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
	// SendDeviceListUpdate sends an m.device_list_update EDU to the servers.
	SendDeviceListUpdate(servers []string, content map[string]any)
	// SendSigningKeyUpdate sends an m.signing_key_update EDU to the servers.
	SendSigningKeyUpdate(servers []string, content map[string]any)
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

// remoteServers returns the other servers that share a room with user:
// those that track its devices.
func (s *Server) remoteServers(ctx context.Context, user id.UserID) []string {
	if s.fed == nil {
		return nil
	}
	shared, err := s.rooms.SharedRoomUsers(ctx, user)
	if err != nil {
		s.log.Warn("device list update: shared rooms", zap.Error(err))
		return nil
	}
	var servers []string
	for u := range shared {
		if srv := u.Homeserver(); srv != s.serverName && !slices.Contains(servers, srv) {
			servers = append(servers, srv)
		}
	}
	return servers
}

// sendDeviceListUpdate tells the other servers sharing a room with user
// that one of its devices changed (m.device_list_update). prev_id is the
// user's previous change: a receiver that has not seen it resyncs.
func (s *Server) sendDeviceListUpdate(ctx context.Context, user id.UserID, device id.DeviceID, pos int64, keys json.RawMessage) {
	servers := s.remoteServers(ctx, user)
	if len(servers) == 0 {
		return
	}
	content := deviceListUpdate(user, device, pos, s.prevDeviceListChange(ctx, user, pos))
	if len(keys) > 0 {
		content["keys"] = keys
	}
	s.fed.SendDeviceListUpdate(servers, content)
}

// prevDeviceListChange is the prev_id of user's device-list change at pos:
// their change before it, if any.
func (s *Server) prevDeviceListChange(ctx context.Context, user id.UserID, pos int64) []int64 {
	prev := []int64{}
	if last, err := s.store.LastDeviceListChange(ctx, user, pos); err != nil {
		s.log.Warn("device list update: previous change", zap.Error(err))
	} else if last > 0 {
		prev = append(prev, last)
	}
	return prev
}

// deviceListUpdate is the m.device_list_update content for a change of
// user's device at pos, without keys.
func deviceListUpdate(user id.UserID, device id.DeviceID, pos int64, prev []int64) map[string]any {
	return map[string]any{"user_id": user, "device_id": device, "stream_id": pos, "prev_id": prev, "deleted": false}
}

// DevicesChanged tells the other servers sharing a room with user that its
// devices were created, renamed or re-signed (with their current keys and
// names) or deleted. The change itself is the user's newest device-list
// change, already recorded by the store.
func (s *Server) DevicesChanged(ctx context.Context, user id.UserID, devices []id.DeviceID, deleted bool) {
	if len(devices) == 0 {
		return
	}
	servers := s.remoteServers(ctx, user)
	if len(servers) == 0 {
		return
	}
	pos, err := s.store.LastDeviceListChange(ctx, user, math.MaxInt64)
	if err != nil || pos == 0 {
		s.log.Warn("device list update: position", zap.Error(err))
		return
	}
	var keys map[id.DeviceID]json.RawMessage
	if !deleted {
		// As other servers see them: with the signatures the user uploaded.
		lk, err := s.LocalKeys(ctx, map[id.UserID][]id.DeviceID{user: devices}, "")
		if err != nil {
			s.log.Warn("device list update: keys", zap.Error(err))
			return
		}
		keys = lk.Devices[user]
	}
	prev := s.prevDeviceListChange(ctx, user, pos)
	for _, d := range devices {
		content := deviceListUpdate(user, d, pos, prev)
		content["deleted"] = deleted
		if !deleted {
			dev, err := s.store.GetDevice(ctx, user, d)
			if err != nil {
				continue // not a device (a cross-signing key), or gone already
			}
			if dev.DisplayName != "" {
				content["device_display_name"] = dev.DisplayName
			}
			if k, ok := keys[d]; ok {
				content["keys"] = k
			}
		}
		s.fed.SendDeviceListUpdate(servers, content)
	}
}

// sendSigningKeyUpdate tells the other servers sharing a room with user
// that its master or self-signing key changed (m.signing_key_update).
func (s *Server) sendSigningKeyUpdate(ctx context.Context, user id.UserID, keys map[string]json.RawMessage) {
	content := map[string]any{"user_id": user}
	for typ, field := range map[string]string{"master": "master_key", "self_signing": "self_signing_key"} {
		if k, ok := keys[typ]; ok {
			content[field] = k
		}
	}
	if len(content) == 1 {
		return // only the user-signing key, which other servers never see
	}
	if servers := s.remoteServers(ctx, user); len(servers) > 0 {
		s.fed.SendSigningKeyUpdate(servers, content)
	}
}

// RemoteDeviceListUpdate records that a remote user's devices changed (an
// m.device_list_update EDU from its server): local users sharing a room with
// it see it in device_lists.changed.
func (s *Server) RemoteDeviceListUpdate(ctx context.Context, origin string, user id.UserID) error {
	if user.Homeserver() != origin {
		return fmt.Errorf("user %s is not from %s", user, origin)
	}
	if _, err := s.store.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: user}}); err != nil {
		return err
	}
	s.wakeDeviceListWatchers(ctx, user)
	return nil
}
