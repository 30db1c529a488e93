package keyserver

import (
	"context"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/storage"
	"parley/syncapi"
)

// WakeOnDeviceChanges wraps the store the client API uses. Creating,
// renaming and deleting devices record a device-list change in their own
// transaction (storage/sqlstore); the wrapper then wakes the long-polling
// /sync of everyone who shares a room with the device's owner, so that they
// hear about it at once rather than at their next timeout, and tells other
// servers through the function given to AnnounceTo.
func WakeOnDeviceChanges(store storage.Store, notifier *syncapi.Notifier, log *zap.Logger) *DeviceChanges {
	return &DeviceChanges{Store: store, notifier: notifier, log: log}
}

// DeviceChanges is the store wrapper of WakeOnDeviceChanges.
type DeviceChanges struct {
	storage.Store
	notifier *syncapi.Notifier
	log      *zap.Logger
	announce func(ctx context.Context, user id.UserID, devices []id.DeviceID, deleted bool)
}

// AnnounceTo sets where device changes go for other servers (the key
// server's DevicesChanged); call it before serving.
func (w *DeviceChanges) AnnounceTo(f func(ctx context.Context, user id.UserID, devices []id.DeviceID, deleted bool)) {
	w.announce = f
}

func (w *DeviceChanges) wake(ctx context.Context, user id.UserID) {
	users := []id.UserID{user}
	shared, err := w.Store.SharedRoomUsers(ctx, user)
	if err != nil {
		w.log.Warn("device list watchers", zap.String("user_id", string(user)), zap.Error(err))
	}
	for u := range shared {
		users = append(users, u)
	}
	w.notifier.WakeUsers(users...)
}

// changed wakes the watchers of user's devices and tells other servers.
func (w *DeviceChanges) changed(ctx context.Context, user id.UserID, devices []id.DeviceID, deleted bool) {
	w.wake(ctx, user)
	if w.announce != nil {
		w.announce(ctx, user, devices, deleted)
	}
}

// devicesBut lists user's device IDs except keep (before they are deleted).
func (w *DeviceChanges) devicesBut(ctx context.Context, user id.UserID, keep id.DeviceID) []id.DeviceID {
	devs, err := w.Store.ListDevices(ctx, user)
	if err != nil {
		w.log.Warn("devices to announce", zap.String("user_id", string(user)), zap.Error(err))
		return nil
	}
	var out []id.DeviceID
	for _, d := range devs {
		if d.DeviceID != keep {
			out = append(out, d.DeviceID)
		}
	}
	return out
}

// CreateDevice implements storage.AccountStore.
func (w *DeviceChanges) CreateDevice(ctx context.Context, d storage.NewDevice) (*storage.Device, error) {
	dev, err := w.Store.CreateDevice(ctx, d)
	if err == nil {
		w.changed(ctx, d.UserID, []id.DeviceID{dev.DeviceID}, false)
	}
	return dev, err
}

// SetDeviceDisplayName implements storage.AccountStore.
func (w *DeviceChanges) SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	err := w.Store.SetDeviceDisplayName(ctx, userID, deviceID, name)
	if err == nil {
		w.changed(ctx, userID, []id.DeviceID{deviceID}, false)
	}
	return err
}

// DeleteDevice implements storage.AccountStore.
func (w *DeviceChanges) DeleteDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error {
	err := w.Store.DeleteDevice(ctx, userID, deviceID)
	if err == nil {
		w.changed(ctx, userID, []id.DeviceID{deviceID}, true)
	}
	return err
}

// DeleteDevices implements storage.AccountStore.
func (w *DeviceChanges) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	err := w.Store.DeleteDevices(ctx, userID, deviceIDs)
	if err == nil && len(deviceIDs) > 0 {
		w.changed(ctx, userID, deviceIDs, true)
	}
	return err
}

// DeleteAllDevices implements storage.AccountStore.
func (w *DeviceChanges) DeleteAllDevices(ctx context.Context, userID id.UserID, keep id.DeviceID) error {
	gone := w.devicesBut(ctx, userID, keep)
	err := w.Store.DeleteAllDevices(ctx, userID, keep)
	if err == nil {
		w.changed(ctx, userID, gone, true)
	}
	return err
}

// SetPassword implements storage.AccountStore.
func (w *DeviceChanges) SetPassword(ctx context.Context, userID id.UserID, hash string, logoutDevices bool, keep id.DeviceID) error {
	var gone []id.DeviceID
	if logoutDevices {
		gone = w.devicesBut(ctx, userID, keep)
	}
	err := w.Store.SetPassword(ctx, userID, hash, logoutDevices, keep)
	if err == nil && logoutDevices {
		w.changed(ctx, userID, gone, true)
	}
	return err
}

// DeactivateAccount implements storage.AccountStore.
func (w *DeviceChanges) DeactivateAccount(ctx context.Context, userID id.UserID, erase bool) error {
	gone := w.devicesBut(ctx, userID, "")
	err := w.Store.DeactivateAccount(ctx, userID, erase)
	if err == nil {
		w.changed(ctx, userID, gone, true)
	}
	return err
}
