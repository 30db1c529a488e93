package keyserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
	"parley/syncapi"
)

// sendToDeviceRequest is the body of PUT /sendToDevice/{eventType}/{txnId}.
type sendToDeviceRequest struct {
	Messages map[id.UserID]map[string]json.RawMessage `json:"messages"`
}

// sendToDevice handles PUT /sendToDevice/{eventType}/{txnId}. The messages
// of one transaction are stored once; a retry with the same txnId is a no-op.
// Device "*" means every device of the user.
func (s *Server) sendToDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	evType := httputil.PathVar(r, "eventType")
	txnID := httputil.PathVar(r, "txnId")
	var req sendToDeviceRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.Messages == nil {
		return httputil.MissingParam("messages is required")
	}
	ctx := r.Context()
	var msgs []storage.ToDeviceMessage
	var targets []id.UserID
	remote := map[string][]id.UserID{}
	for user, devices := range req.Messages {
		if _, _, err := user.Parse(); err != nil {
			return httputil.InvalidParam("invalid user ID %q", user)
		}
		if !s.isLocal(user) {
			if s.fed == nil {
				s.log.Debug("dropping to-device message for remote user", zap.String("user_id", string(user)))
			} else {
				remote[user.Homeserver()] = append(remote[user.Homeserver()], user)
			}
			continue
		}
		all, err := s.store.ListDevices(ctx, user)
		if err != nil {
			return fmt.Errorf("list devices: %w", err)
		}
		exists := make(map[id.DeviceID]bool, len(all))
		for _, d := range all {
			exists[d.DeviceID] = true
		}
		for device, content := range devices {
			if len(content) == 0 || content[0] != '{' {
				return httputil.BadJSON("message for %s %s must be an object", user, device)
			}
			if device != "*" {
				// Messages for devices that do not exist would never be collected.
				if exists[id.DeviceID(device)] {
					msgs = append(msgs, storage.ToDeviceMessage{UserID: user, DeviceID: id.DeviceID(device), Type: evType, Content: content})
				}
				continue
			}
			for _, d := range all {
				msgs = append(msgs, storage.ToDeviceMessage{UserID: user, DeviceID: d.DeviceID, Type: evType, Content: content})
			}
		}
		targets = append(targets, user)
	}
	_, dup, err := s.store.SendToDevice(ctx, dev.UserID, dev.DeviceID, txnID, msgs)
	if err != nil {
		return fmt.Errorf("send to device: %w", err)
	}
	if !dup && s.notifier != nil {
		s.notifier.WakeUsers(targets...)
	}
	if !dup {
		for server, users := range remote {
			msgs := make(map[id.UserID]map[string]json.RawMessage, len(users))
			for _, u := range users {
				msgs[u] = req.Messages[u]
			}
			s.fed.SendToDevice(server, dev.UserID, evType, string(dev.DeviceID)+"_"+txnID, msgs)
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// ToDeviceStream is the sync stream of to-device messages. A message stays
// stored until the device syncs with a token at or past its position, which
// acknowledges it; until then every sync from an earlier token delivers it again.
type ToDeviceStream struct {
	store storage.KeyStore
	// acked remembers, per device, the position up to which this process
	// already deleted delivered messages, so a sync whose since is not past
	// it skips the query (messages always get higher positions).
	ackMu sync.Mutex
	acked map[ackKey]int64
}

type ackKey struct {
	user   id.UserID
	device id.DeviceID
}

// maxAcked bounds ToDeviceStream.acked; it is cleared when full.
const maxAcked = 10000

// NewToDeviceStream returns the to-device stream over store.
func NewToDeviceStream(store storage.KeyStore) *ToDeviceStream {
	return &ToDeviceStream{store: store, acked: map[ackKey]int64{}}
}

// Name implements syncapi.Stream.
func (t *ToDeviceStream) Name() syncapi.StreamName { return syncapi.StreamToDevice }

// PositionIn implements syncapi.SnapshotStream.
func (t *ToDeviceStream) PositionIn(p storage.Positions) int64 { return p.ToDevice }

// Position implements syncapi.Stream.
func (t *ToDeviceStream) Position(ctx context.Context) (int64, error) {
	return t.store.ToDevicePosition(ctx)
}

// Fill implements syncapi.Stream. It reads by position only, so it does not
// matter whether Finish has acknowledged (deleted) older messages yet.
func (t *ToDeviceStream) Fill(ctx context.Context, req *syncapi.Request, from, to int64, resp *syncapi.Response) (bool, error) {
	msgs, err := t.store.ToDeviceMessages(ctx, req.Device.UserID, req.Device.DeviceID, from, to, 0)
	if err != nil {
		return false, fmt.Errorf("to-device messages: %w", err)
	}
	for _, m := range msgs {
		b, err := json.Marshal(map[string]any{"sender": m.Sender, "type": m.Type, "content": m.Content})
		if err != nil {
			return false, err
		}
		resp.ToDevice.Events = append(resp.ToDevice.Events, b)
	}
	return len(msgs) > 0, nil
}

// ack deletes the messages the request's since token acknowledges.
func ack(ctx context.Context, store storage.KeyStore, req *syncapi.Request) error {
	if req.Initial() {
		return nil
	}
	if pos := req.Since[syncapi.StreamToDevice]; pos > 0 {
		if err := store.AckToDevice(ctx, req.Device.UserID, req.Device.DeviceID, pos); err != nil {
			return fmt.Errorf("acknowledge to-device messages: %w", err)
		}
	}
	return nil
}

// Finish implements syncapi.Finisher: it fills device_one_time_keys_count
// and device_unused_fallback_key_types on every sync, and acknowledges
// to-device messages even when the stream did not move.
func (t *ToDeviceStream) Finish(ctx context.Context, req *syncapi.Request, resp *syncapi.Response) error {
	k := ackKey{req.Device.UserID, req.Device.DeviceID}
	pos := req.Since[syncapi.StreamToDevice]
	t.ackMu.Lock()
	done := !req.Initial() && pos <= t.acked[k]
	t.ackMu.Unlock()
	if !done {
		if err := ack(ctx, t.store, req); err != nil {
			return err
		}
		if !req.Initial() {
			t.ackMu.Lock()
			if len(t.acked) >= maxAcked {
				clear(t.acked)
			}
			t.acked[k] = max(t.acked[k], pos)
			t.ackMu.Unlock()
		}
	}
	counts, types, err := t.store.DeviceKeyCounts(ctx, req.Device.UserID, req.Device.DeviceID)
	if err != nil {
		return fmt.Errorf("one-time key counts: %w", err)
	}
	resp.DeviceOneTimeKeysCount = countsWithDefault(counts)
	resp.DeviceUnusedFallback = types
	return nil
}
