package clientapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

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
	}
	for _, c := range cases {
		var merr *httputil.MatrixError
		if !errors.As(roomError(c.err), &merr) || merr.Status != c.status || merr.Code != c.code {
			t.Errorf("%v: got %+v, want %d %s", c.err, merr, c.status, c.code)
		}
	}
}
