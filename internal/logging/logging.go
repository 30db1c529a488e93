// Package logging builds Parley's zap logger and carries request-scoped loggers in contexts.
package logging

import (
	"context"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"maunium.net/go/mautrix/id"
)

type ctxKey struct{}

// With returns a context carrying l.
func With(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the logger carried by ctx, or fallback.
func From(ctx context.Context, fallback *zap.Logger) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok {
		return l
	}
	return fallback
}

// New builds a JSON logger at the given level ("debug", "info", "warn", "error").
func New(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

// RoomID is the room_id field.
func RoomID(v id.RoomID) zap.Field { return zap.String("room_id", string(v)) }

// EventID is the event_id field.
func EventID(v id.EventID) zap.Field { return zap.String("event_id", string(v)) }

// UserID is the user_id field.
func UserID(v id.UserID) zap.Field { return zap.String("user_id", string(v)) }

// DeviceID is the device_id field.
func DeviceID(v id.DeviceID) zap.Field { return zap.String("device_id", string(v)) }
