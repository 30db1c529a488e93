package keyserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Dehydrated devices (MSC3814, unstable prefix org.matrix.msc3814.v1): a
// device the client stores server-side, with its keys, so that megolm keys
// sent while the user has no other device can be retrieved later.

// dehydratedBatch is how many to-device messages one
// /dehydrated_device/{deviceId}/events call returns.
const dehydratedBatch = 100

func (s *Server) registerDehydrated(root *mux.Router) {
	r := root.PathPrefix("/_matrix/client/unstable/org.matrix.msc3814.v1").Subrouter()
	s.authed(r, "/dehydrated_device", "put_dehydrated_device", s.putDehydratedDevice, http.MethodPut)
	s.authed(r, "/dehydrated_device", "get_dehydrated_device", s.getDehydratedDevice, http.MethodGet)
	s.authed(r, "/dehydrated_device", "delete_dehydrated_device", s.deleteDehydratedDevice, http.MethodDelete)
	s.authed(r, "/dehydrated_device/{deviceId}/events", "dehydrated_device_events", s.dehydratedDeviceEvents, http.MethodPost)
}

// putDehydratedDeviceRequest is the body of PUT /dehydrated_device.
type putDehydratedDeviceRequest struct {
	DeviceID     id.DeviceID                `json:"device_id"`
	DeviceData   json.RawMessage            `json:"device_data"`
	DisplayName  string                     `json:"initial_device_display_name"`
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// putDehydratedDevice handles PUT /dehydrated_device: it replaces the user's
// dehydrated device. Device keys are required, so that no dehydrated device
// exists that cannot receive encrypted messages.
func (s *Server) putDehydratedDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req putDehydratedDeviceRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.DeviceID == "" {
		return httputil.MissingParam("device_id is required")
	}
	if len(req.DeviceData) == 0 || req.DeviceData[0] != '{' {
		return httputil.MissingParam("device_data must be an object")
	}
	if !present(req.DeviceKeys) {
		return httputil.MissingParam("device_keys is required")
	}
	if err := checkDeviceKeys(req.DeviceKeys, &authn.Device{UserID: dev.UserID, DeviceID: req.DeviceID}, s.cfg.E2EE.VerifyDeviceKeySignatures); err != nil {
		return err
	}
	if err := checkKeyMap("one_time_keys", req.OneTimeKeys); err != nil {
		return err
	}
	if err := checkKeyMap("fallback_keys", req.FallbackKeys); err != nil {
		return err
	}
	if err := oneFallbackPerAlgorithm(req.FallbackKeys); err != nil {
		return err
	}
	err := s.store.SetDehydratedDevice(r.Context(), dev.UserID, req.DeviceID, req.DisplayName, req.DeviceData,
		storage.KeyUpload{DeviceKeys: req.DeviceKeys, OneTimeKeys: req.OneTimeKeys, FallbackKeys: req.FallbackKeys})
	if errors.Is(err, storage.ErrConflict) {
		return httputil.InvalidParam("device ID %s is in use", req.DeviceID)
	} else if err != nil {
		return fmt.Errorf("set dehydrated device: %w", err)
	}
	s.wakeDeviceListWatchers(r.Context(), dev.UserID)
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"device_id": req.DeviceID})
}

// getDehydratedDevice handles GET /dehydrated_device.
func (s *Server) getDehydratedDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	devID, data, err := s.store.GetDehydratedDevice(r.Context(), dev.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No dehydrated device")
	} else if err != nil {
		return fmt.Errorf("get dehydrated device: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"device_id": devID, "device_data": data})
}

// deleteDehydratedDevice handles DELETE /dehydrated_device.
func (s *Server) deleteDehydratedDevice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	devID, err := s.store.DeleteDehydratedDevice(r.Context(), dev.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No dehydrated device")
	} else if err != nil {
		return fmt.Errorf("delete dehydrated device: %w", err)
	}
	s.wakeDeviceListWatchers(r.Context(), dev.UserID)
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"device_id": devID})
}

// dehydratedDeviceEvents handles POST /dehydrated_device/{deviceId}/events.
// next_batch is a to-device stream position; delivered messages are kept
// (MSC3814: an aborted rehydration can start again), and a batch with no
// events marks the end.
func (s *Server) dehydratedDeviceEvents(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		NextBatch string `json:"next_batch"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	devID, _, err := s.store.GetDehydratedDevice(ctx, dev.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && devID != id.DeviceID(httputil.PathVar(r, "deviceId"))) {
		return httputil.Forbidden("not your dehydrated device")
	} else if err != nil {
		return fmt.Errorf("get dehydrated device: %w", err)
	}
	var from int64
	if req.NextBatch != "" {
		if from, err = strconv.ParseInt(req.NextBatch, 10, 64); err != nil || from < 0 {
			return httputil.InvalidParam("invalid next_batch")
		}
	}
	to, err := s.store.ToDevicePosition(ctx)
	if err != nil {
		return fmt.Errorf("to-device position: %w", err)
	}
	msgs, err := s.store.ToDeviceMessages(ctx, dev.UserID, devID, from, to, dehydratedBatch)
	if err != nil {
		return fmt.Errorf("dehydrated device messages: %w", err)
	}
	events := make([]map[string]any, 0, len(msgs))
	next := from
	for _, m := range msgs {
		events = append(events, map[string]any{"sender": m.Sender, "type": m.Type, "content": m.Content})
		next = m.Pos
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"events": events, "next_batch": strconv.FormatInt(next, 10)})
}
