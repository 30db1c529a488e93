package homeserver

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"parley/federation"
	"parley/keyserver"
)

// fedKeys connects the key server to federation (keyserver.Federation).
type fedKeys struct {
	remote *federation.Remote
	out    *federation.Outbound
}

// QueryKeys implements keyserver.Federation.
func (f fedKeys) QueryKeys(ctx context.Context, server string, query map[id.UserID][]id.DeviceID) (*keyserver.RemoteKeys, error) {
	dk, master, ss, err := f.remote.QueryUserKeys(ctx, server, query)
	if err != nil {
		return nil, err
	}
	return &keyserver.RemoteKeys{DeviceKeys: dk, MasterKeys: master, SelfSigningKeys: ss}, nil
}

// ClaimKeys implements keyserver.Federation.
func (f fedKeys) ClaimKeys(ctx context.Context, server string, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	return f.remote.ClaimUserKeys(ctx, server, query)
}

// SendToDevice implements keyserver.Federation: one m.direct_to_device EDU.
func (f fedKeys) SendToDevice(server string, sender id.UserID, evType, messageID string, messages map[id.UserID]map[string]json.RawMessage) {
	f.out.SendEDU([]string{server}, "m.direct_to_device", map[string]any{
		"sender": sender, "type": evType, "message_id": messageID, "messages": messages,
	})
}

// SendDeviceListUpdate implements keyserver.Federation.
func (f fedKeys) SendDeviceListUpdate(servers []string, content map[string]any) {
	f.out.SendEDU(servers, "m.device_list_update", content)
}

// SendSigningKeyUpdate implements keyserver.Federation.
func (f fedKeys) SendSigningKeyUpdate(servers []string, content map[string]any) {
	f.out.SendEDU(servers, "m.signing_key_update", content)
}
