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
// hear about it at once rather than at their next timeout.
func WakeOnDeviceChanges(store storage.Store, notifier *syncapi.Notifier, log *zap.Logger) storage.Store {
	return &wakingStore{Store: store, notifier: notifier, log: log}
}

type wakingStore struct {
	storage.Store
	notifier *syncapi.Notifier
	log      *zap.Logger
}

func (w *wakingStore) wake(ctx context.Context, user id.UserID) {
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

// CreateDevice implements storage.AccountStore.
func (w *wakingStore) CreateDevice(ctx context.Context, d storage.NewDevice) (*storage.Device, error) {
	dev, err := w.Store.CreateDevice(ctx, d)
	if err == nil {
		w.wake(ctx, d.UserID)
	}
	return dev, err
}

// SetDeviceDisplayName implements storage.AccountStore.
func (w *wakingStore) SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	err := w.Store.SetDeviceDisplayName(ctx, userID, deviceID, name)
	if err == nil {
		w.wake(ctx, userID)
	}
	return err
}

// DeleteDevice implements storage.AccountStore.
func (w *wakingStore) DeleteDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error {
	err := w.Store.DeleteDevice(ctx, userID, deviceID)
	if err == nil {
		w.wake(ctx, userID)
	}
	return err
}

// DeleteDevices implements storage.AccountStore.
func (w *wakingStore) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	err := w.Store.DeleteDevices(ctx, userID, deviceIDs)
	if err == nil && len(deviceIDs) > 0 {
		w.wake(ctx, userID)
	}
	return err
}

// DeleteAllDevices implements storage.AccountStore.
func (w *wakingStore) DeleteAllDevices(ctx context.Context, userID id.UserID, keep id.DeviceID) error {
	err := w.Store.DeleteAllDevices(ctx, userID, keep)
	if err == nil {
		w.wake(ctx, userID)
	}
	return err
}

// SetPassword implements storage.AccountStore.
func (w *wakingStore) SetPassword(ctx context.Context, userID id.UserID, hash string, logoutDevices bool, keep id.DeviceID) error {
	err := w.Store.SetPassword(ctx, userID, hash, logoutDevices, keep)
	if err == nil && logoutDevices {
		w.wake(ctx, userID)
	}
	return err
}

// DeactivateAccount implements storage.AccountStore.
func (w *wakingStore) DeactivateAccount(ctx context.Context, userID id.UserID, erase bool) error {
	err := w.Store.DeactivateAccount(ctx, userID, erase)
	if err == nil {
		w.wake(ctx, userID)
	}
	return err
}
