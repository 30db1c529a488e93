package adminapi

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/logging"
	"parley/roomserver"
	"parley/storage"
)

// Auditor appends security-relevant actions to the audit log for the other
// components (logins, password changes, deactivations, room state changes).
type Auditor struct {
	store storage.AdminStore
	log   *zap.Logger
}

// NewAuditor returns an Auditor writing to store.
func NewAuditor(store storage.AdminStore, log *zap.Logger) *Auditor {
	return &Auditor{store: store, log: log}
}

// Record appends one entry. Failures are logged, not returned: the action
// being recorded has already happened.
func (au *Auditor) Record(ctx context.Context, action string, user id.UserID, device id.DeviceID, ip, target string, details map[string]any) {
	e := storage.AuditEntry{TS: time.Now().UnixMilli(), Action: action, UserID: user, DeviceID: device, IP: ip, Target: target}
	if details != nil {
		e.Details, _ = json.Marshal(details)
	}
	if err := au.store.AppendAudit(ctx, e); err != nil {
		logging.From(ctx, au.log).Error("append audit entry", zap.String("action", action), zap.Error(err))
	}
}

// auditedState maps the room state event types whose changes are audited to their action.
var auditedState = map[string]string{
	"m.room.power_levels": "power_levels_change",
	"m.room.join_rules":   "join_rules_change",
}

// OnRoomEvent records power level and join rule changes; the homeserver
// calls it for every event the roomserver commits.
func (au *Auditor) OnRoomEvent(ev roomserver.OutputEvent) {
	e := ev.Event
	action, ok := auditedState[e.Type]
	if !ok || e.StateKey == nil || *e.StateKey != "" || e.Rejected || e.Outlier || e.SoftFailed {
		return
	}
	var content json.RawMessage
	var pdu struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(e.JSON, &pdu) == nil {
		content = pdu.Content
	}
	au.Record(context.Background(), action, e.Sender, "", "", string(e.RoomID),
		map[string]any{"event_id": e.EventID, "content": content})
}
