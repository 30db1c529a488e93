package clientapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"

	"parley/internal/httputil"
	"parley/roomserver"
)

func TestRoomErrorRemote(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: invite to hs2.test: dial tcp: refused", roomserver.ErrRemote), http.StatusBadGateway, httputil.CodeUnknown},
		{fmt.Errorf("%w: no such room", roomserver.ErrRemoteNotFound), http.StatusNotFound, httputil.CodeNotFound},
		{roomserver.ErrIncompatibleVersion, http.StatusBadRequest, httputil.CodeIncompatibleRoomVer},
		// A remote's 4xx Matrix error passes through.
		{fmt.Errorf("%w: %w", roomserver.ErrRemote, mautrix.HTTPError{Response: &http.Response{StatusCode: 400},
			RespError: &mautrix.RespError{ErrCode: "M_TEST_ERROR_CODE", Err: "denied!"}}), http.StatusBadRequest, "M_TEST_ERROR_CODE"},
		{fmt.Errorf("%w: %w", roomserver.ErrRemote, mautrix.HTTPError{Response: &http.Response{StatusCode: 500},
			RespError: &mautrix.RespError{ErrCode: "M_UNKNOWN", Err: "oops"}}), http.StatusBadGateway, httputil.CodeUnknown},
	}
	merr := remoteClientError(fmt.Errorf("%w: %w", roomserver.ErrRemote, mautrix.HTTPError{Response: &http.Response{StatusCode: 400},
		RespError: &mautrix.RespError{ErrCode: "M_INCOMPATIBLE_ROOM_VERSION", Err: "upgrade", ExtraData: map[string]any{"room_version": "x"}}}))
	if merr == nil || merr.Extra["room_version"] != "x" {
		t.Errorf("extra fields of a remote error: %+v", merr)
	}
	for _, c := range cases {
		var merr *httputil.MatrixError
		if !errors.As(roomError(c.err), &merr) || merr.Status != c.status || merr.Code != c.code {
			t.Errorf("%v: got %+v, want %d %s", c.err, merr, c.status, c.code)
		}
	}
}
