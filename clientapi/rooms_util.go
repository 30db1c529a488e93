package clientapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/eventutil"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// roomError maps roomserver errors to Matrix errors.
func roomError(err error) error {
	var merr *httputil.MatrixError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &merr):
		return err
	case errors.Is(err, roomserver.ErrRoomNotFound):
		return httputil.NotFound("Unknown room")
	case errors.Is(err, roomserver.ErrEventNotFound):
		return httputil.NotFound("Event not found")
	case errors.Is(err, roomserver.ErrGuestForbidden):
		return httputil.Errorf(http.StatusForbidden, httputil.CodeGuestAccessForbidden, "Guest access is not allowed in this room")
	case errors.Is(err, roomserver.ErrForbidden):
		return httputil.Forbidden("%s", strings.TrimPrefix(err.Error(), roomserver.ErrForbidden.Error()+": "))
	case errors.Is(err, roomserver.ErrUnsupportedRoomVersion):
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnsupportedRoomVer, "%v", err)
	case errors.Is(err, roomserver.ErrRoomInUse):
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeRoomInUse, "Room alias already taken")
	case errors.Is(err, roomserver.ErrBadAlias):
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeBadAlias, "%v", err)
	case errors.Is(err, roomserver.ErrTooLarge):
		return httputil.Errorf(http.StatusRequestEntityTooLarge, httputil.CodeTooLarge, "%v", err)
	case errors.Is(err, roomserver.ErrInvalidParam):
		return httputil.InvalidParam("%s", strings.TrimPrefix(err.Error(), roomserver.ErrInvalidParam.Error()+": "))
	case errors.Is(err, roomserver.ErrInvalidRoomState):
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidRoomState, "%s", strings.TrimPrefix(err.Error(), roomserver.ErrInvalidRoomState.Error()+": "))
	case errors.Is(err, roomserver.ErrBadRequest):
		return httputil.BadJSON("%s", strings.TrimPrefix(err.Error(), roomserver.ErrBadRequest.Error()+": "))
	case errors.Is(err, roomserver.ErrRemoteNotFound):
		return httputil.NotFound("%v", err)
	case errors.Is(err, roomserver.ErrIncompatibleVersion):
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeIncompatibleRoomVer, "%v", err)
	case errors.Is(err, roomserver.ErrRemote) && remoteClientError(err) != nil:
		return remoteClientError(err)
	case errors.Is(err, roomserver.ErrRemote):
		// The other server failed or could not be reached: not our fault, and
		// not a 500 (Synapse answers 502 here too).
		return &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeUnknown, Message: err.Error(), Err: err}
	}
	return err
}

// remoteClientError passes a remote server's 4xx Matrix error (for example
// make_join refused with M_INCOMPATIBLE_ROOM_VERSION) through to the client:
// its status, errcode, message and extra fields. Nil for any other error.
func remoteClientError(err error) *httputil.MatrixError {
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil || herr.RespError == nil || herr.RespError.ErrCode == "" ||
		herr.Response.StatusCode < 400 || herr.Response.StatusCode >= 500 || herr.RespError.ErrCode == "M_UNRECOGNIZED" {
		return nil
	}
	out := &httputil.MatrixError{Status: herr.Response.StatusCode, Code: herr.RespError.ErrCode, Message: herr.RespError.Err, Err: err}
	for k, v := range herr.RespError.ExtraData {
		if k != "errcode" && k != "error" {
			out = out.With(k, v)
		}
	}
	return out
}

// roomIDVar reads and checks the {roomID} path variable.
func roomIDVar(r *http.Request) (id.RoomID, error) {
	v := httputil.PathVar(r, "roomID")
	if !strings.HasPrefix(v, "!") {
		return "", httputil.InvalidParam("invalid room ID %q", v)
	}
	return id.RoomID(v), nil
}

// clientEvents formats stored events for dev; transaction_id goes only to the device that sent the event.
func clientEvents(dev *authn.Device, evs []*storage.Event) []rawJSON {
	now := time.Now().UnixMilli()
	out := make([]rawJSON, len(evs))
	for i, ev := range evs {
		out[i] = clientEvent(dev, ev, now)
	}
	return out
}

func clientEvent(dev *authn.Device, ev *storage.Event, now int64) rawJSON {
	return clientEventAs(dev, ev, now, "")
}

func clientEventAs(dev *authn.Device, ev *storage.Event, now int64, membership string) rawJSON {
	in := eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID), RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: now, Membership: membership}
	if dev != nil && ev.TxnID != "" && ev.Sender == dev.UserID && ev.DeviceID == dev.DeviceID {
		in.TxnID = ev.TxnID
	}
	return eventutil.ClientEvent(make([]byte, 0, len(ev.JSON)), in)
}

// roomEvents formats room events of one room for dev, each with the user's
// membership at it in unsigned.membership (spec v1.11).
func (a *API) roomEvents(ctx context.Context, dev *authn.Device, roomID id.RoomID, evs []*storage.Event) ([]rawJSON, error) {
	if len(evs) == 0 {
		return []rawJSON{}, nil
	}
	vis, err := a.rooms.NewVisibility(ctx, dev.UserID, roomID)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	out := make([]rawJSON, len(evs))
	for i, ev := range evs {
		out[i] = clientEventAs(dev, ev, now, vis.MembershipAt(ev.StreamPos))
	}
	return out, nil
}

// rawJSON is pre-encoded JSON.
type rawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// Pagination tokens of /messages and /context are "t<stream position>". The
// sync API's prev_batch uses the same form, and a sync next_batch ("s<pdu>_...")
// is accepted too: its first position is the PDU stream's. Positions of
// events backfilled from other servers are negative.
func formatPos(pos int64) string { return "t" + strconv.FormatInt(pos, 10) }

func parsePos(tok string) (int64, error) {
	if len(tok) < 2 || (tok[0] != 't' && tok[0] != 's') {
		return 0, fmt.Errorf("invalid pagination token %q", tok)
	}
	num := tok[1:]
	if i := strings.IndexByte(num, '_'); i >= 0 {
		num = num[:i]
	}
	v, err := strconv.ParseInt(num, 10, 64)
	// Backfilled history has negative positions ("t-5"); sync tokens do not.
	if err != nil || v < 0 && tok[0] != 't' {
		return 0, fmt.Errorf("invalid pagination token %q", tok)
	}
	return v, nil
}
