package homeserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"parley/internal/asapi"
	"parley/internal/logging"
	"parley/storage"
)

// createAppServiceSenders registers each application service's own user
// (@sender_localpart:server_name) that does not exist yet, so that the
// service can act as it at once.
func createAppServiceSenders(ctx context.Context, store storage.AccountStore, apps *asapi.Registry, log *zap.Logger) error {
	for _, as := range apps.Services() {
		_, err := store.GetAccount(ctx, as.Sender)
		if err == nil {
			continue
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("application service %s: %w", as.ID, err)
		}
		_, err = store.Register(ctx, storage.Registration{
			Account:     storage.Account{UserID: as.Sender, CreatedTS: time.Now().UnixMilli()},
			DisplayName: as.SenderLocalpart,
		})
		if err != nil && !errors.Is(err, storage.ErrConflict) { // another process may have just done it
			return fmt.Errorf("application service %s: create %s: %w", as.ID, as.Sender, err)
		}
		log.Info("created application service user", zap.String("appservice", as.ID), logging.UserID(as.Sender))
	}
	return nil
}
