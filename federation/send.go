package federation

import (
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/storage"
)

// EDUHandler receives the EDUs of inbound transactions (typing, receipts,
// presence, device lists, to-device). Implementations must not block long.
type EDUHandler interface {
	// HandleEDU processes one EDU from origin; errors are logged and the EDU dropped.
	HandleEDU(r *http.Request, origin, eduType string, content json.RawMessage) error
}

type txnBody struct {
	Origin         string            `json:"origin"`
	OriginServerTS *int64            `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []struct {
		Type    string          `json:"edu_type"`
		Content json.RawMessage `json:"content"`
	} `json:"edus"`
}

// sendTransaction handles PUT /_matrix/federation/v1/send/{txnID}: PDUs go
// through the roomserver's checks on receipt one by one; EDUs go to the
// EDU handler. The answer is stored per (origin, txn_id), so a retried
// transaction is not processed twice.
func (a *API) sendTransaction(w http.ResponseWriter, r *http.Request) error {
	txnID := httputil.PathVar(r, "txnID")
	from := origin(r)
	var body txnBody
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	switch {
	case body.PDUs == nil:
		return httputil.BadJSON("pdus is required")
	case body.OriginServerTS == nil:
		return httputil.BadJSON("origin_server_ts is required")
	case body.Origin != from:
		return httputil.BadJSON("origin %q does not match the signing server %q", body.Origin, from)
	case len(body.PDUs) > maxTxnPDUs:
		return httputil.BadJSON("a transaction may hold at most %d PDUs", maxTxnPDUs)
	case len(body.EDUs) > maxTxnEDUs:
		return httputil.BadJSON("a transaction may hold at most %d EDUs", maxTxnEDUs)
	}
	for _, p := range body.PDUs {
		if len(p) == 0 || p[0] != '{' {
			return httputil.BadJSON("every PDU must be a JSON object")
		}
	}
	unlock := a.txns.lock(from + "\x00" + txnID)
	defer unlock()
	if prev, err := a.d.Store.FederationTxn(r.Context(), from, txnID); err == nil {
		return httputil.WriteRawJSON(w, http.StatusOK, prev)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	pdus := make([]jsontext.Value, len(body.PDUs))
	for i, p := range body.PDUs {
		pdus[i] = jsontext.Value(p)
	}
	results := map[id.EventID]map[string]string{}
	for _, res := range a.d.Rooms.InputRemoteEvents(r.Context(), from, pdus) {
		if res.Err != nil {
			results[res.EventID] = map[string]string{"error": res.Err.Error()}
		} else {
			results[res.EventID] = map[string]string{}
		}
	}
	for _, e := range body.EDUs {
		if a.d.EDUs == nil {
			break
		}
		if err := a.d.EDUs.HandleEDU(r, from, e.Type, e.Content); err != nil {
			a.d.Log.Info("edu dropped", zap.String("origin", from), zap.String("edu_type", e.Type), zap.Error(err))
		}
	}
	out, err := json.Marshal(map[string]any{"pdus": results})
	if err != nil {
		return err
	}
	if err := a.d.Store.StoreFederationTxn(r.Context(), from, txnID, out, time.Now().UnixMilli()); err != nil {
		return err
	}
	return httputil.WriteRawJSON(w, http.StatusOK, out)
}

func nowMS() int64 { return time.Now().UnixMilli() }
